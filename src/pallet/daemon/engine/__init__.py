"""The Docker Engine API (v1.41 and below), one module per resource; `routes` lists them."""
