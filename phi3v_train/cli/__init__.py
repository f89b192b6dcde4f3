"""The `phi3v-train` command line. Each command lives in its own module."""
