"""The handlers of the `dual-denoising` commands, one module per command family; `cli.py` builds every parser and
imports a handler's module only when its command runs, so `--help` and listing stay fast. Each handler turns the
parsed arguments into calls of the library and owns the command's output; the library never imports this package."""
