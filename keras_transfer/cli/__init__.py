"""Command lines: absl flags, flags -> frozen config, `app.run`. Nothing else.

Every command's library code lives in the subpackages below; a module here
defines a command's flags, turns them into arguments and prints what the
command promises on stdout.
"""
