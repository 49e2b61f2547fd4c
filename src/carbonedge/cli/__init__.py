"""The ``carbonedge`` command. Each sub-module registers its sub-commands; they only parse
arguments and call typed library functions."""
