"""Python command handlers (admin commands: INFO, CONFIG, CLIENT, COMMAND, ...)."""
