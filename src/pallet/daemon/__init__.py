"""palletd: the daemon that runs containers from images (Docker Engine API on a unix socket).

    config      where things live, which OCI runtimes exist
    store       SQLite (WAL) container metadata
    events      the event bus behind `GET /events`
    shims       launching pallet-shim and talking to it
    spec        a container's Docker config -> its OCI runtime config
    containers  the container lifecycle: create, start, stop, exit, restart policies,
                recovery of running containers after a daemon restart
    execs       exec instances
    images      image lookups and Docker's image shapes over pallet.images
    gc          garbage collection of content and snapshots
    server      the aiohttp application: API versions, errors, routes of `engine/`
"""
