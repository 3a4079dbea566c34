"""The ``lmforge`` command line: parse, call the library, print."""
