"""The `phi3v-data` command line. Each command group lives in its own module."""
