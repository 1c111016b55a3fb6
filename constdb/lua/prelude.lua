-- ConstDB's scripting environment (constdb/scripting.py runs this once per
-- Lua state, before the sandbox is closed). Arguments: the Python side's
-- functions. Returns the functions scripting.py calls.
local py_call, py_pcall, py_errmsg, py_log, py_sha1hex, py_setresp, py_rand, py_srand, py_tick, libs = ...

local type, select, tostring, tonumber, error, rawget, rawset, pcall, xpcall, setmetatable, unpack, setfenv, loadstring =
  type, select, tostring, tonumber, error, rawget, rawset, pcall, xpcall, setmetatable, unpack, setfenv, loadstring
local byte, sub, find, format, gsub = string.byte, string.sub, string.find, string.format, string.gsub
local concat = table.concat
local dbg = debug


-- RESP reply -> Lua value (Redis's conversions: RESP2 and, after setresp(3), RESP3)
local parse
parse = function(s, pos)
  local t = byte(s, pos)
  local e = find(s, "\r\n", pos, true)
  if t == 36 then -- $ bulk
    local n = tonumber(sub(s, pos + 1, e - 1))
    if n < 0 then return false, e + 2 end
    return sub(s, e + 2, e + 1 + n), e + 4 + n
  elseif t == 58 then -- : integer
    return tonumber(sub(s, pos + 1, e - 1)), e + 2
  elseif t == 43 then -- + status
    return { ok = sub(s, pos + 1, e - 1) }, e + 2
  elseif t == 45 then -- - error
    return { err = sub(s, pos + 1, e - 1) }, e + 2
  elseif t == 42 or t == 126 or t == 62 then -- * array, ~ set, > push
    local n = tonumber(sub(s, pos + 1, e - 1))
    if n < 0 then return false, e + 2 end
    local r = {}
    pos = e + 2
    if t == 126 then
      local m
      for _ = 1, n do
        m, pos = parse(s, pos)
        r[m] = true
      end
      return { set = r }, pos
    end
    for i = 1, n do
      r[i], pos = parse(s, pos)
    end
    return r, pos
  elseif t == 37 then -- % map
    local n = tonumber(sub(s, pos + 1, e - 1))
    local r, k = {}, nil
    pos = e + 2
    for _ = 1, n do
      k, pos = parse(s, pos)
      r[k], pos = parse(s, pos)
    end
    return { map = r }, pos
  elseif t == 95 then -- _ null
    return nil, e + 2
  elseif t == 35 then -- # boolean
    return byte(s, pos + 1) == 116, e + 2
  elseif t == 44 then -- , double
    return { double = tonumber(sub(s, pos + 1, e - 1)) }, e + 2
  elseif t == 40 then -- ( big number
    return { big_number = sub(s, pos + 1, e - 1) }, e + 2
  elseif t == 61 then -- = verbatim
    local n = tonumber(sub(s, pos + 1, e - 1))
    return { verbatim_string = { format = sub(s, e + 2, e + 4), string = sub(s, e + 6, e + 1 + n) } }, e + 4 + n
  elseif t == 124 then -- | attribute: skipped
    local n = tonumber(sub(s, pos + 1, e - 1))
    pos = e + 2
    local _
    for _ = 1, 2 * n do
      _, pos = parse(s, pos)
    end
    return parse(s, pos)
  end
  error("bad reply")
end

local redis = {}
-- redis.call and redis.pcall are C functions of scriptcore (the native
-- path) or Python functions, as redis.sha1hex, redis.log and redis.setresp
-- are (C functions to Lua, as Redis's are: an error they raise is reported
-- at the script's line, even after `return redis.call(...)`)
redis.call = py_call
redis.pcall = py_pcall
redis.error_reply = function(...)
  local e = ...
  if select("#", ...) ~= 1 or type(e) ~= "string" then return { err = "ERR wrong number or type of arguments" } end
  if byte(e, 1) == 45 then e = sub(e, 2) end
  local sp = find(e, " ", 1, true)
  if sp == nil then e = "ERR " .. e end
  return { err = (gsub(e, "[\r\n]+$", "")) }
end
redis.status_reply = function(...)
  local s = ...
  if select("#", ...) ~= 1 or type(s) ~= "string" then return { err = "ERR wrong number or type of arguments" } end
  return { ok = s }
end
redis.sha1hex = py_sha1hex
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.log = py_log
local resp3 = false -- the script chose RESP3
redis.setresp = py_setresp -- which calls set_resp3
local function set_resp3(v) resp3 = v end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = function(v)
  if type(v) ~= "number" or v < 0 or v > 3 then
    error({ err = "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE." })
  end
  -- effects are always replicated: the group's members are not replicas that may skip them
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = function(...) return true end
redis.REDIS_VERSION = libs.version
redis.REDIS_VERSION_NUM = libs.version_num

rawset(_G, "redis", redis)

-- math.random with Redis's own generator (rand48, reset before every script)
math.random = function(...)
  local n = select("#", ...)
  local r = py_rand()
  if n == 0 then return r end
  local m, u = ...
  if n == 1 then
    if m < 1 then error("bad argument #1 to 'random' (interval is empty)", 2) end
    return math.floor(r * m) + 1
  end
  if m > u then error("bad argument #2 to 'random' (interval is empty)", 2) end
  return math.floor(r * (u - m + 1)) + m
end
math.randomseed = function(s) py_srand(tonumber(s) or 0) end

-- the decimal text of small lengths (a number's text is a %.14g printf in Lua 5.1)
local BULK_LEN = {}
for i = 0, 1023 do BULK_LEN[i] = tostring(i) end

-- Lua value -> RESP reply (Redis's conversions), into buffer b
local emit
-- r3: the caller speaks RESP3; s3: the script chose RESP3 (redis.setresp)
emit = function(b, v, r3, s3)
  local t = type(v)
  if t == "string" then
    b[#b + 1] = "$" .. (BULK_LEN[#v] or #v) .. "\r\n" .. v .. "\r\n"
  elseif t == "number" then
    b[#b + 1] = format(":%d\r\n", v)
  elseif t == "boolean" then
    if s3 then
      if r3 then
        b[#b + 1] = v and "#t\r\n" or "#f\r\n"
      else
        b[#b + 1] = v and ":1\r\n" or ":0\r\n"
      end
    elseif v then
      b[#b + 1] = ":1\r\n"
    else
      b[#b + 1] = r3 and "_\r\n" or "$-1\r\n"
    end
  elseif t == "table" then
    local f = rawget(v, "err")
    if type(f) == "string" then
      b[#b + 1] = "-" .. gsub(f, "[\r\n]", " ") .. "\r\n"
      return
    end
    f = rawget(v, "ok")
    if type(f) == "string" then
      b[#b + 1] = "+" .. gsub(f, "[\r\n]", " ") .. "\r\n"
      return
    end
    f = rawget(v, "double")
    if type(f) == "number" then
      local d = format("%.17g", f)
      if r3 then b[#b + 1] = "," .. d .. "\r\n" else b[#b + 1] = "$" .. #d .. "\r\n" .. d .. "\r\n" end
      return
    end
    f = rawget(v, "big_number")
    if type(f) == "string" then
      if r3 then b[#b + 1] = "(" .. gsub(f, "[\r\n]", " ") .. "\r\n" else b[#b + 1] = "$" .. #f .. "\r\n" .. f .. "\r\n" end
      return
    end
    f = rawget(v, "verbatim_string")
    if type(f) == "table" then
      local fmt, str = rawget(f, "format"), rawget(f, "string")
      if type(fmt) == "string" and type(str) == "string" then
        if r3 then
          b[#b + 1] = "=" .. (#str + 4) .. "\r\n" .. fmt .. ":" .. str .. "\r\n"
        else
          b[#b + 1] = "$" .. #str .. "\r\n" .. str .. "\r\n"
        end
        return
      end
    end
    f = rawget(v, "map")
    if type(f) == "table" then
      local i, at = 0, #b + 1
      b[at] = ""
      for k, x in pairs(f) do
        emit(b, k, r3, s3)
        emit(b, x, r3, s3)
        i = i + 1
      end
      b[at] = r3 and ("%" .. i .. "\r\n") or ("*" .. 2 * i .. "\r\n")
      return
    end
    f = rawget(v, "set")
    if type(f) == "table" then
      local i, at = 0, #b + 1
      b[at] = ""
      for k in pairs(f) do
        emit(b, k, r3, s3)
        i = i + 1
      end
      b[at] = (r3 and "~" or "*") .. i .. "\r\n"
      return
    end
    local at, j = #b + 1, 1
    b[at] = ""
    while true do
      local x = rawget(v, j)
      if x == nil then break end
      emit(b, x, r3, s3)
      j = j + 1
    end
    b[at] = "*" .. (j - 1) .. "\r\n"
  else
    b[#b + 1] = r3 and "_\r\n" or "$-1\r\n"
  end
end

-- the error handler of a script's run: where it failed (the script's line,
-- not this file's or a C function's)
local function handler(err)
  in_script = false
  local i = dbg.getinfo(2, "nSl")
  local lvl = 2
  if i and i.what == "C" then
    lvl = 3
    i = dbg.getinfo(3, "nSl")
  end
  while i and i.source == "@prelude" do -- the sandbox's metamethods
    lvl = lvl + 1
    i = dbg.getinfo(lvl, "nSl")
  end
  if type(err) == "userdata" then
    local red, m = py_errmsg(err)
    if red then
      err = { err = m }
    elseif m then
      err = m
    end
  end
  if type(err) ~= "table" then
    err = { err = "ERR " .. tostring(err) }
  end
  if i then
    err.source = i.source
    err.line = i.currentline
  end
  return err
end

-- the sandbox: scripts see SG, the globals Redis 7.0 gives them (the real
-- _G keeps what lupa needs), through env, which refuses every assignment;
-- SG reports a read of an undefined global
local G = _G
local SG = {}
for _, n in ipairs({ "assert", "collectgarbage", "error", "gcinfo", "getmetatable", "ipairs", "next",
  "pairs", "pcall", "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring",
  "type", "unpack", "xpcall", "_VERSION", "coroutine", "string", "table", "math", "redis", "cjson",
  "bit", "struct", "cmsgpack" }) do
  SG[n] = G[n]
end
local function ro_error() error("Attempt to modify a readonly table", 2) end
local env = setmetatable({}, { __index = SG, __newindex = ro_error, __metatable = false })
-- chunks a script compiles see the same sandbox
SG.loadstring = function(s, name)
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
SG.load = function(fn, name)
  local f, e = load(fn, name)
  if f then setfenv(f, env) end
  return f, e
end
SG._G = SG
-- Redis's pcall: an error raised as a table (redis.call's, error({err=...}))
-- comes back as its err string
local function pcall_ret(ok, ...)
  if ok then return true, ... end
  local e = ...
  local t = type(e)
  if t == "userdata" then
    local _, m = py_errmsg(e)
    e = m or e
  elseif t == "table" then
    local m = rawget(e, "err")
    if type(m) == "string" then e = m end
  end
  return false, e
end
SG.pcall = function(f, ...) return pcall_ret(pcall(f, ...)) end
for _, n in ipairs({ "string", "math", "table", "coroutine", "redis", "cjson", "bit", "struct", "cmsgpack" }) do
  setmetatable(SG[n], { __newindex = ro_error, __metatable = false })
end
local function no_global(_, n)
  error("Script attempted to access nonexistent global variable '" .. tostring(n) .. "'", 2)
end
setmetatable(SG, { __index = no_global, __newindex = ro_error, __metatable = false })

-- every `count` instructions: the Python side's clock check (busy scripts,
-- SCRIPT KILL). Once killed, it fires at every line, so pcall cannot keep
-- the script alive
local hook
local in_script = false
hook = function()
  if in_script and py_tick() then
    dbg.sethook(hook, "l")
    error({ err = "ERR Script killed by user with SCRIPT KILL..." })
  end
end

-- run a compiled script: its reply as RESP bytes (keys, argv: its KEYS and
-- ARGV tables; scriptcore's native path calls this with lua_pcall)
local function run(f, name, r3, count, is_fn, keys, argv)
  resp3 = false
  if is_fn then
    -- a library function: KEYS and ARGV are its arguments
    local cb = f
    f = function() return cb(keys, argv) end
  else
    rawset(SG, "KEYS", keys)
    rawset(SG, "ARGV", argv)
  end
  in_script = true
  dbg.sethook(hook, "", count)
  -- one line: a line hook of a killed script fires no more before it is unset
  local ok, v = xpcall(f, handler); in_script = false; dbg.sethook()
  if ok and type(v) == "string" then
    -- the common reply, without a buffer table
    return "$" .. (BULK_LEN[#v] or #v) .. "\r\n" .. v .. "\r\n"
  end
  local b = {}
  if ok then
    emit(b, v, r3, resp3)
  elseif type(v) == "table" and type(rawget(v, "err")) == "string" then
    local msg = gsub(v.err, "[\r\n]", " ")
    if v.source and v.line then
      msg = msg .. " script: " .. name .. ", on " .. v.source .. ":" .. v.line .. "."
    end
    b[1] = "-" .. msg .. "\r\n"
  else
    b[1] = "-Error running script " .. name .. ", " .. sub(tostring(v), 1, 100) .. "\r\n"
  end
  return concat(b)
end

-- run, called through lupa (the lupa path): KEYS and ARGV from the arguments
local function run_va(f, name, r3, count, is_fn, nkeys, ...)
  local keys, argv = { ... }, {}
  local n = #keys
  for i = nkeys + 1, n do
    argv[i - nkeys] = keys[i]
    keys[i] = nil
  end
  return run(f, name, r3, count, is_fn, keys, argv)
end

-- FUNCTION libraries: their own globals (FSG: no KEYS/ARGV), where `redis`
-- is, while the library's code runs, the load-time API only
local FSG = {}
for k, v in pairs(SG) do
  if k ~= "KEYS" and k ~= "ARGV" and k ~= "loadstring" and k ~= "load" then FSG[k] = v end
end
FSG._G = FSG
local fenv = setmetatable({}, { __index = FSG, __newindex = ro_error, __metatable = false })
FSG.loadstring = function(s, name)
  local f, e = loadstring(s, name)
  if f then setfenv(f, fenv) end
  return f, e
end
setmetatable(FSG, { __index = no_global, __newindex = ro_error, __metatable = false })

-- load a library: (functions table name -> {fn, flags, description}) or (nil, error)
local function load_library(body)
  local f, err = loadstring(body, "@user_function")
  if f == nil then return nil, "ERR Error compiling function: " .. err end
  setfenv(f, fenv)
  local fns, count, reg_err = {}, 0, nil
  local load_redis = {
    log = redis.log,
    LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
    REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM,
    setresp = redis.setresp,
  }
  load_redis.register_function = function(...)
    local name, cb, flags, desc
    local a = ...
    if select("#", ...) == 1 and type(a) == "table" then
      for k, v in pairs(a) do
        if k == "function_name" then name = v
        elseif k == "callback" then cb = v
        elseif k == "flags" then flags = v
        elseif k == "description" then desc = v
        else error({ err = "ERR unknown argument given to redis.register_function" }) end
      end
    elseif select("#", ...) == 2 then
      name, cb = ...
    else
      error({ err = "ERR wrong number of arguments to redis.register_function" })
    end
    if type(name) ~= "string" then error({ err = "ERR function_name argument given to redis.register_function must be a string" }) end
    if type(cb) ~= "function" then error({ err = "ERR callback argument given to redis.register_function must be a function" }) end
    if flags ~= nil and type(flags) ~= "table" then error({ err = "ERR flags argument to redis.register_function must be a table representing function flags" }) end
    if desc ~= nil and type(desc) ~= "string" then error({ err = "ERR description argument given to redis.register_function must be a string" }) end
    if fns[name] then error({ err = "ERR Function already exists in the library" }) end
    local fl = {}
    for _, x in ipairs(flags or {}) do
      if type(x) ~= "string" then error({ err = "ERR unknown flag given" }) end
      fl[#fl + 1] = x
    end
    fns[name] = { cb, fl, desc }
    count = count + 1
  end
  setmetatable(load_redis, { __index = no_global })
  FSG.redis = load_redis
  local ok, e = xpcall(f, handler)
  FSG.redis = redis
  if not ok then
    local m = type(e) == "table" and rawget(e, "err") or tostring(e)
    return nil, "ERR Error registering functions: " .. m
  end
  if count == 0 then return nil, "ERR No functions registered" end
  return fns
end

local function compile(body)
  local f, err = loadstring(body, "@user_script")
  if f == nil then return nil, err end
  setfenv(f, env)
  return f
end

return run_va, compile, parse, set_resp3, load_library, run
