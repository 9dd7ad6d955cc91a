"""pallet-shim: one resident supervisor per container (see `main` and `wire`).

It imports only the stdlib's C modules and its own small modules, because one of it runs for
every container: palletd starts it as `python -I -S -c ...` (see `pallet.daemon.shims`).
"""
