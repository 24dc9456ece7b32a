"""The emulated phone's confined shell: parser, interpreter, builtins and toybox commands."""
