"""Dockerfile builds in palletd: the real docker CLI (legacy builder, DOCKER_BUILDKIT=0),
docker-py and `pallet build` against `POST /build`, and the built image checked by real
peers (umoci + runc, podman)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from daemon_support import make_daemon, serve_directory

palletd = make_daemon()

MULTI_STEP = """\
ARG BASE=docker.io/library/busybox:latest
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/srv/app \\
    MODE="two words"
LABEL org.example.title="built by pallet" version=1
WORKDIR $APP_HOME
COPY greeting.txt data/
COPY --chown=tester:tester owned.txt .
RUN echo "$GREETING from RUN in $(pwd), mode $MODE" > run.txt \\
    && ls -ln owned.txt | awk '{print $3":"$4}' > owner.txt
EXPOSE 8080 53/udp
USER tester
CMD ["sh", "-c", "cat data/greeting.txt run.txt owner.txt; id -u; echo $MODE"]
"""


def write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def build(palletd, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    return subprocess.run(["docker", "build", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def image_config(palletd, name: str) -> dict:
    status, body = palletd.api("GET", f"/images/{name}/json")
    assert status == 200, body
    return body


def leftovers(palletd) -> dict[str, list[str]]:
    """What a build could leave behind: containers, build snapshots, runtime state,
    mounts and directories under the daemon's build directory."""
    from pallet.images.service import ImageService

    svc = ImageService(palletd.root)
    try:
        snaps = [i.name for i in svc.snapshotter.walk() if i.kind != "committed"]
    finally:
        svc.close()
    rroot = Path(palletd.exec_root, "runtime")
    # (pallet-runtime's @seccomp holds compiled filters shared by containers, no state)
    runtime = [str(p) for d in (rroot.iterdir() if rroot.exists() else []) for p in
               d.iterdir() if p.is_dir() and p.name != "@seccomp"]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f
                  if line.split()[4].startswith(palletd.exec_root + "/build")]
    bdir = Path(palletd.exec_root, "build")
    return {"containers": palletd.docker("ps", "-aq").stdout.split(), "snapshots": snaps,
            "runtime": runtime, "mounts": mounts,
            "build dirs": [p.name for p in bdir.iterdir()] if bdir.exists() else []}


def no_leftovers(palletd) -> None:
    assert leftovers(palletd) == {"containers": [], "snapshots": [], "runtime": [],
                                  "mounts": [], "build dirs": []}


@pytest.fixture
def ctx(tmp_path):
    return tmp_path / "ctx"


def test_multi_step_build_run_and_cache(palletd, ctx):
    write(ctx, {"Dockerfile": MULTI_STEP, "greeting.txt": "greetings from the context\n",
                "owned.txt": "mine\n"})
    p = build(palletd, "-t", "built:1", "--build-arg", "GREETING=howdy", str(ctx))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Step 1/11 : FROM ${BASE}" in p.stdout
    assert "Step 11/11 : CMD" in p.stdout
    assert "Using cache" not in p.stdout
    built = [x for x in p.stdout.splitlines() if x.startswith("Successfully built ")]
    assert len(built) == 1 and "Successfully tagged built:1" in p.stdout
    short = built[0].split()[-1]

    run = palletd.docker("run", "--rm", "built:1", check=True)
    assert run.stdout.splitlines() == [
        "greetings from the context", "howdy from RUN in /srv/app, mode two words",
        "1000:1000", "1000", "two words"]

    info = image_config(palletd, "built:1")
    assert info["Id"].removeprefix("sha256:").startswith(short)
    cfg = info["Config"]
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "tester"
    assert "APP_HOME=/srv/app" in cfg["Env"] and "MODE=two words" in cfg["Env"]
    assert not any(e.startswith("GREETING=") for e in cfg["Env"])  # ARGs do not persist
    assert cfg["Labels"] == {"org.example.title": "built by pallet", "version": "1"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    base = image_config(palletd, "busybox")
    # WORKDIR, two COPYs and RUN each add a layer over the base's
    assert info["RootFS"]["Layers"][:1] == base["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 4

    # the same build again comes from the cache, step by step, to the same image
    again = build(palletd, "-t", "built:again", "--build-arg", "GREETING=howdy", str(ctx))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("Using cache") == 10
    assert f"Successfully built {short}" in again.stdout

    # a different build arg value misses from the first RUN that sees it
    other = build(palletd, "-t", "built:2", "--build-arg", "GREETING=hi", str(ctx))
    assert other.returncode == 0, other.stderr
    assert other.stdout.count("Using cache") == 6
    assert palletd.docker("run", "--rm", "built:2", check=True).stdout.splitlines()[1] \
        .startswith("hi from RUN")

    # changed COPY content is a cache miss from that step on; --no-cache never hits
    (ctx / "greeting.txt").write_text("changed\n")
    changed = build(palletd, "-t", "built:3", "--build-arg", "GREETING=howdy", str(ctx))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.count("Using cache") == 4
    nocache = build(palletd, "--no-cache", "-q", "--build-arg", "GREETING=howdy", str(ctx))
    assert nocache.returncode == 0, nocache.stderr
    assert nocache.stdout.strip().startswith("sha256:")
    no_leftovers(palletd)


def test_history_and_image_documents(palletd, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN true\nSTOPSIGNAL SIGINT\n"
                "RUN mkdir -p /tmp/t/u && touch /tmp/t/u/f && rm -r /tmp/t\n"
                "HEALTHCHECK --interval=5s CMD true\nVOLUME /data\n"
                "ONBUILD RUN echo triggered > /onbuild\nENTRYPOINT [\"echo\"]\n"})
    p = build(palletd, "-t", "meta:1", str(ctx))
    assert p.returncode == 0, p.stderr
    from pallet.images.service import ImageService

    svc = ImageService(palletd.root)
    try:
        r = svc.resolve("meta:1")
    finally:
        svc.close()
    c = r.config.config
    assert c.StopSignal == "SIGINT" and c.Volumes == {"/data": {}}
    assert c.Entrypoint == ["echo"] and c.Cmd is None  # a new ENTRYPOINT drops the base CMD
    assert c.extra["Healthcheck"] == {"Test": ["CMD-SHELL", "true"],
                                      "Interval": 5_000_000_000}
    assert c.extra["OnBuild"] == ["RUN echo triggered > /onbuild"]
    hist = [h.created_by for h in r.config.history or []]
    assert "/bin/sh -c true" in hist  # RUN true changed nothing: an empty layer
    shown = palletd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}",
                           "meta:1", check=True).stdout.splitlines()
    assert shown[0].startswith('/bin/sh -c #(nop)  ENTRYPOINT ["echo"]|0B')
    assert "/bin/sh -c true|0B" in shown
    # a file made and removed again leaves no layer (its copied-up parents are pruned)
    assert "/bin/sh -c mkdir -p /tmp/t/u && touch /tmp/t/u/f && rm -r /tmp/t|0B" in shown
    assert len(shown) == len(hist)
    assert len(r.config.diff_ids) == len([h for h in r.config.history or []
                                          if not h.empty_layer])
    cfg = json.loads(palletd.docker("inspect", "meta:1", check=True).stdout)[0]["Config"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert cfg["OnBuild"] == ["RUN echo triggered > /onbuild"]
    # an image FROM it runs the trigger
    write(ctx, {"Dockerfile": "FROM meta:1\nCMD [\"x\"]\n"})
    child = build(palletd, "-t", "child:1", str(ctx))
    assert child.returncode == 0, child.stderr
    assert "Executing 1 build trigger" in child.stdout
    out = palletd.docker("run", "--rm", "--entrypoint", "cat", "child:1", "/onbuild",
                         check=True).stdout
    assert out == "triggered\n"


def test_multi_stage_copy_from_and_target(palletd, ctx):
    write(ctx, {"Dockerfile": """\
FROM busybox AS builder
RUN mkdir -p /out && echo compiled > /out/app && chmod 755 /out/app && ln -s app /out/link
FROM busybox AS tester
RUN echo tested > /tested
FROM scratch
COPY --from=builder /bin/busybox /bin/busybox
COPY --from=builder /out/ /opt/
COPY --from=1 /tested /
CMD ["/bin/busybox", "sh", "-c", "B=/bin/busybox; $B cat /opt/app /tested; $B readlink /opt/link"]
"""})
    p = build(palletd, "-t", "multi:1", str(ctx))
    assert p.returncode == 0, p.stdout + p.stderr
    out = palletd.docker("run", "--rm", "multi:1", check=True).stdout
    assert out.splitlines() == ["compiled", "tested", "app"]
    info = image_config(palletd, "multi:1")
    assert len(info["RootFS"]["Layers"]) == 3  # FROM scratch: only the three COPYs
    t = build(palletd, "-t", "multi:builder", "--target", "builder", str(ctx))
    assert t.returncode == 0, t.stderr
    assert "Step 2/2" in t.stdout
    assert palletd.docker("run", "--rm", "multi:builder", "cat", "/out/app",
                          check=True).stdout == "compiled\n"
    bad = build(palletd, "--target", "nope", str(ctx))
    assert bad.returncode != 0 and "failed to reach build target nope" in bad.stderr
    no_leftovers(palletd)


def test_failing_run_reports_exit_code_and_cleans_up(palletd, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo before\n"
                "RUN echo partial > /partial; echo to-stderr >&2; exit 3\n"})
    p = build(palletd, "-t", "fails:1", str(ctx))
    assert p.returncode == 3, p.stdout + p.stderr
    assert "to-stderr" in p.stdout
    assert ("The command '/bin/sh -c echo partial > /partial; echo to-stderr >&2; exit 3' "
            "returned a non-zero code: 3") in p.stderr
    assert palletd.api("GET", "/images/fails:1/json")[0] == 404
    no_leftovers(palletd)


def test_parse_errors_name_the_line(palletd, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\n\nRUNN echo\n"})
    p = build(palletd, str(ctx))
    assert p.returncode != 0
    assert "Dockerfile parse error line 3: unknown instruction: RUNN" in p.stderr
    write(ctx, {"Dockerfile": "FROM busybox\nENV A=${B:?required}\n"})
    p = build(palletd, str(ctx))
    assert p.returncode != 0 and "Dockerfile line 2: ENV: B: required" in p.stderr
    write(ctx, {"Dockerfile": "FROM busybox\nUSER nosuchuser\nRUN true\n"})
    p = build(palletd, str(ctx))
    assert p.returncode != 0 and "nosuchuser" in p.stderr
    no_leftovers(palletd)


def test_copy_outside_the_context_is_refused(palletd, tmp_path, ctx):
    (tmp_path / "outside").write_text("secret\n")
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY ../outside /x\n"})
    p = build(palletd, str(ctx))
    assert p.returncode != 0 and "outside the build context" in p.stderr
    (ctx / "sub").mkdir()
    for target in ("../outside", "../../../../../etc/shadow", "/etc/shadow",
                   "sub/../../outside"):
        if (ctx / "link").is_symlink():
            (ctx / "link").unlink()
        os.symlink(target, ctx / "link")
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /x\n")
        p = build(palletd, str(ctx))
        assert p.returncode != 0, target
        assert "outside the build context" in p.stderr, (target, p.stderr)
    # a symlink that stays inside is followed; symlinks inside a copied tree are copied
    (ctx / "link").unlink()
    (ctx / "sub" / "real.txt").write_text("inside\n")
    os.symlink("sub/real.txt", ctx / "link")
    os.symlink("/etc/shadow", ctx / "sub" / "abs")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /x\nCOPY link /d/\n"
                                    "COPY sub /sub\nCMD cat /x /d/link; readlink /sub/abs\n")
    p = build(palletd, "-t", "links:1", str(ctx))
    assert p.returncode == 0, p.stderr
    # into a directory, a symlinked source keeps the name it was given by
    assert palletd.docker("run", "--rm", "links:1", check=True).stdout == \
        "inside\ninside\n/etc/shadow\n"


def test_copy_into_image_symlink_stays_in_rootfs(palletd, ctx, tmp_path):
    """An image whose /target is a symlink to a host path: COPY writes inside the rootfs."""
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    write(ctx, {"Dockerfile": f"FROM busybox\nRUN ln -s {hostdir} /target\n"
                "COPY file.txt /target/\nCMD cat {hostdir}/file.txt\n".replace(
                    "{hostdir}", str(hostdir)),
                "file.txt": "stays in the image\n"})
    p = build(palletd, "-t", "escape:1", str(ctx))
    assert p.returncode == 0, p.stderr
    assert list(hostdir.iterdir()) == []
    assert palletd.docker("run", "--rm", "escape:1", check=True).stdout == \
        "stays in the image\n"


def test_context_tar_cannot_write_outside(palletd):
    """A hostile context tar sent straight to the API: `..` names, a symlinked directory
    followed by a file below it, and a hard link to a host file stay in the context."""
    victim = tempfile.mkdtemp(prefix="pallet-victim-")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        def add(name: str, data: bytes = b"", **kw) -> None:
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tf.addfile(ti, io.BytesIO(data))
        add("Dockerfile", b"FROM busybox\nCOPY . /ctx\nCMD find /ctx | sort\n")
        add("../../../../" + victim.lstrip("/") + "/dotdot", b"x")
        add("evil", type=tarfile.SYMTYPE, linkname=victim)
        add("evil/through-symlink", b"x")
        add("hard", type=tarfile.LNKTYPE, linkname="../../../../etc/hostname")
    from daemon_support import UnixHTTP

    c = UnixHTTP(palletd.sock, 120)
    try:
        c.request("POST", "/v1.41/build?t=hostile:1", body=buf.getvalue(),
                  headers={"Content-Type": "application/x-tar"})
        r = c.getresponse()
        msgs = [json.loads(x) for x in r.read().splitlines() if x.strip()]
    finally:
        c.close()
    assert os.listdir(victim) == []
    shutil.rmtree(victim)
    assert any("error" in m for m in msgs), msgs  # the hard link has nothing to point at
    no_leftovers(palletd)


def test_dockerignore_add_archive_and_remote_refused(palletd, ctx):
    write(ctx, {".dockerignore": "secret*\n*.tmp\n!keep.tmp\n", "secret.txt": "no\n",
                "a.tmp": "no\n", "keep.tmp": "yes\n", "plain.txt": "yes\n"})
    arc = io.BytesIO()
    with tarfile.open(fileobj=arc, mode="w:gz") as tf:
        ti = tarfile.TarInfo("pkg/inner.txt")
        ti.size, ti.uid, ti.gid = 6, 1000, 100
        tf.addfile(ti, io.BytesIO(b"inner\n"))
    (ctx / "pkg.tar.gz").write_bytes(arc.getvalue())
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY . /ctx/\nADD pkg.tar.gz /opt/\n"
        "CMD ls /ctx; cat /opt/pkg/inner.txt; stat -c %u:%g /opt/pkg/inner.txt\n")
    p = build(palletd, "-t", "ignore:1", str(ctx))
    assert p.returncode == 0, p.stderr
    out = palletd.docker("run", "--rm", "ignore:1", check=True).stdout.split()
    assert out == ["Dockerfile", "keep.tmp", "pkg.tar.gz", "plain.txt",
                   "inner", "1000:100"]
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret.txt /\n")
    p = build(palletd, str(ctx))
    assert p.returncode != 0 and "Dockerfile line 2: COPY failed: file not found in build " \
        "context or excluded by .dockerignore: stat secret.txt" in p.stderr


def test_add_from_a_url(palletd, ctx, tmp_path):
    """ADD <http URL>: downloaded by the builder, named after the URL's last segment (or
    the destination), mode 0600, Last-Modified kept, archives not unpacked; a failed GET
    names the URL and status; COPY and git URLs refused."""
    ctx.mkdir(exist_ok=True)
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.txt").write_text("hello from http\n")
    (served / "my file.txt").write_text("spaced\n")
    arc = io.BytesIO()
    with tarfile.open(fileobj=arc, mode="w") as tf:
        ti = tarfile.TarInfo("inside.txt")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"in\n"))
    (served / "arch.tar").write_bytes(arc.getvalue())
    os.utime(served / "hello.txt", (1_600_000_000, 1_600_000_000))

    with serve_directory(str(served)) as base:
        (ctx / "Dockerfile").write_text(
            f"FROM busybox\nADD {base}/hello.txt /opt/\nADD {base}/arch.tar /opt/\n"
            f"ADD {base}/hello.txt /opt/renamed\nADD {base}/my%20file.txt /opt/\n"
            "CMD stat -c '%n %a %Y' /opt/hello.txt /opt/arch.tar /opt/renamed; "
            "cat /opt/renamed; ls /opt\n")
        p = build(palletd, "-t", "fromurl:1", str(ctx))
        assert p.returncode == 0, p.stderr
        assert f"Downloading {base}/hello.txt" in p.stdout
        out = palletd.docker("run", "--rm", "fromurl:1", check=True).stdout.splitlines()
        assert out[0] == "/opt/hello.txt 600 1600000000", out
        assert out[1].startswith("/opt/arch.tar 600 "), out  # a file, not unpacked
        assert out[2].startswith("/opt/renamed 600 1600000000"), out
        assert out[3:] == ["hello from http", "arch.tar", "hello.txt", "my file.txt",
                           "renamed"], out
        for line, msg in ((f"ADD {base}/nosuch.txt /opt/",
                           f"failed to GET {base}/nosuch.txt with status 404"),
                          (f"COPY {base}/hello.txt /opt/", "source can't be a URL for COPY"),
                          ("ADD https://example.com/repo.git /src",
                           "git sources are not supported"),
                          (f"ADD {base}/ /opt/", "cannot determine filename from url")):
            (ctx / "Dockerfile").write_text(f"FROM busybox\n{line}\n")
            p = build(palletd, str(ctx))
            assert p.returncode != 0 and msg in p.stderr, (line, p.stderr)
        assert not any(leftovers(palletd).values()), leftovers(palletd)
        palletd.docker("rmi", "fromurl:1", check=True)


def test_run_reaches_the_host_through_the_default_bridge(palletd, ctx, tmp_path):
    """RUN's network is the default bridge, as docker's classic builder's: a server on
    the bridge's gateway answers, and the step's attachment is released afterwards."""
    from test_daemon_network import released

    served = tmp_path / "served"
    served.mkdir()
    (served / "artifact.txt").write_text("an artifact\n")
    gateway = palletd.subnet.rsplit(".", 1)[0] + ".1"
    with serve_directory(str(served), gateway) as base:
        write(ctx, {"Dockerfile": f"FROM busybox\nRUN wget -qO /artifact {base}/artifact.txt\n"
                                  "CMD cat /artifact\n"})
        p = build(palletd, "-t", "fetched:1", str(ctx))
        assert p.returncode == 0, p.stderr
        assert palletd.docker("run", "--rm", "fetched:1", check=True).stdout == \
            "an artifact\n"
        released(palletd)
        p = build(palletd, "--network", "none", "--no-cache", str(ctx))
        assert p.returncode != 0 and "returned a non-zero code" in p.stderr, p.stderr
        p = build(palletd, "--network", "nosuch", str(ctx))
        assert p.returncode != 0 and "no such network" in p.stderr, p.stderr
    palletd.docker("rmi", "fetched:1", check=True)


def test_remote_contexts(palletd, tmp_path):
    """A remote context: the docker CLI downloads a URL itself; docker-py has palletd do it
    (`remote=`): a tar.gz context, or a plain-text Dockerfile that becomes a context of one
    file; a failed download is an HTTP error."""
    docker = pytest.importorskip("docker")
    served = tmp_path / "served"
    served.mkdir()
    arc = io.BytesIO()
    with tarfile.open(fileobj=arc, mode="w:gz") as tf:
        for name, text in (("Dockerfile", "FROM busybox\nCOPY msg /msg\nCMD cat /msg\n"),
                           ("msg", "from a remote context\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(text)
            tf.addfile(ti, io.BytesIO(text.encode()))
    (served / "ctx.tar.gz").write_bytes(arc.getvalue())
    (served / "Dockerfile.txt").write_text("FROM busybox\nCMD [\"echo\", \"plain\"]\n")
    c = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="1.41")
    try:
        with serve_directory(str(served)) as base:
            p = build(palletd, "-t", "remote:1", f"{base}/ctx.tar.gz")  # the CLI's download
            assert p.returncode == 0, p.stderr
            assert palletd.docker("run", "--rm", "remote:1", check=True).stdout == \
                "from a remote context\n"
            c.images.build(path=f"{base}/ctx.tar.gz", tag="remote:2")
            assert c.containers.run("remote:2", remove=True) == b"from a remote context\n"
            c.images.build(path=f"{base}/Dockerfile.txt", tag="remote:3")
            assert c.containers.run("remote:3", remove=True) == b"plain\n"
            with pytest.raises(docker.errors.APIError) as e:
                c.images.build(path=f"{base}/nosuch.tar")
            assert e.value.status_code == 400 and f"remote {base}/nosuch.tar: 404" in str(
                e.value)
    finally:
        c.close()
        palletd.docker("rmi", "remote:1", "remote:2", "remote:3")


def test_docker_py_build(palletd, ctx):
    docker = pytest.importorskip("docker")
    write(ctx, {"Dockerfile": "FROM busybox\nARG WHO\nRUN echo \"built for $WHO\" > /who\n"
                "CMD cat /who\n"})
    c = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="1.41")
    try:
        img, logs = c.images.build(path=str(ctx), tag="py:1", buildargs={"WHO": "docker-py"})
        assert "py:1" in img.tags
        assert any("Successfully built" in x.get("stream", "") for x in logs)
        assert c.containers.run("py:1", remove=True) == b"built for docker-py\n"
        with pytest.raises(docker.errors.BuildError) as err:
            (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
            c.images.build(path=str(ctx), tag="py:2")
        assert "returned a non-zero code: 7" in str(err.value)
    finally:
        c.close()


def test_pallet_build_cli(palletd, ctx, tmp_path):
    write(ctx, {"app.txt": "from pallet build\n", "skip.me": "x\n",
                ".dockerignore": "*.me\n.dockerignore\n"})
    dockerfile = write(tmp_path / "elsewhere", {"Build.file": "FROM busybox\nARG V\n"
                                                "COPY . /app\nRUN echo $V > /app/v\n"
                                                "CMD cat /app/app.txt /app/v; ls /app\n"})
    p = palletd.pallet("build", "-t", "pb:1", "-f", str(dockerfile / "Build.file"),
                       "--build-arg", "V=42", "--label", "built.with=pallet", str(ctx),
                       timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Successfully tagged pb:1" in p.stdout
    assert image_config(palletd, "pb:1")["Config"]["Labels"] == {"built.with": "pallet"}
    out = palletd.docker("run", "--rm", "pb:1", check=True).stdout.split("\n")
    assert out[:2] == ["from pallet build", "42"]
    assert "skip.me" not in out and "app.txt" in out
    q = palletd.pallet("build", "-q", "-f", str(dockerfile / "Build.file"),
                       "--build-arg", "V=42", "--label", "built.with=pallet", str(ctx),
                       timeout=180)
    assert q.returncode == 0 and q.stdout.strip() == image_config(palletd, "pb:1")["Id"]
    (dockerfile / "Build.file").write_text("FROM busybox\nRUN exit 4\n")
    bad = palletd.pallet("build", "-f", str(dockerfile / "Build.file"), str(ctx))
    assert bad.returncode == 4 and "returned a non-zero code: 4" in bad.stderr


def test_build_with_runc_and_check_with_peers(palletd, ctx, tmp_path):
    """RUN through runc; the image exported as an OCI layout is unpacked by umoci and run
    by runc, and read by skopeo (and podman runs it, when it is installed)."""
    if shutil.which("runc") is None or shutil.which("umoci") is None:
        pytest.skip("runc and umoci (Debian packages) are needed")
    # the RUN deletes (whiteouts) and replaces a directory (opaque), which peers must apply
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo made by runc > /made && rm /usr/bin/wc"
                " && rm -rf /home && mkdir /home && touch /home/new\n"
                "WORKDIR /w\nCOPY f.txt .\n"
                "CMD cat /made /w/f.txt; ls /home; test -e /usr/bin/wc || echo gone\n",
                "f.txt": "copied\n"})
    from daemon_support import UnixHTTP

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("Dockerfile", "f.txt"):
            tf.add(ctx / name, name)
    c = UnixHTTP(palletd.sock, 180)
    try:
        c.request("POST", "/v1.41/build?t=peer:1&runtime=runc", body=buf.getvalue(),
                  headers={"Content-Type": "application/x-tar"})
        msgs = [json.loads(x) for x in c.getresponse().read().splitlines() if x.strip()]
    finally:
        c.close()
    assert not any("error" in m for m in msgs), msgs
    assert any("aux" in m for m in msgs)

    from pallet.images.service import ImageService

    layout = tmp_path / "layout"
    svc = ImageService(palletd.root)
    try:
        svc.export(["peer:1"], str(layout))
    finally:
        svc.close()
    # a plain tag for the peers' layout references (`layout:tag`)
    ref = "peer-1"
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": ref}
    (layout / "index.json").write_text(json.dumps(index))
    inspect = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:{ref}"],
                                        capture_output=True, text=True, check=True).stdout)
    assert len(inspect["Layers"]) == 4
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)],
                   capture_output=True, text=True, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "--bundle",
                        str(bundle), "peer-check"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "made by runc\ncopied\nnew\ngone\n"
    if shutil.which("podman"):
        runroot = tempfile.mkdtemp(prefix="pallet-pm-")
        try:
            r = subprocess.run(["podman", "--root", str(tmp_path / "pm"), "--runroot",
                                runroot, "--storage-driver", "vfs", "--events-backend",
                                "none", "--cgroup-manager", "cgroupfs", "run", "--rm",
                                "--network", "none", "--ulimit", "nofile=1024:1024",
                                "--ulimit", "nproc=1024:1024",
                                f"oci:{layout}:{ref}"], capture_output=True, text=True,
                               timeout=180)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "made by runc\ncopied\nnew\ngone\n"
        finally:
            subprocess.run(["podman", "--root", str(tmp_path / "pm"), "--runroot",
                            runroot, "--storage-driver", "vfs", "rm", "-af"],
                           capture_output=True, timeout=60)
            shutil.rmtree(runroot, ignore_errors=True)
    no_leftovers(palletd)


def test_build_cache_survives_rmi_and_builder_prune_clears_it(palletd, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo cached > /c\n"})
    assert build(palletd, "-t", "gc:1", str(ctx)).returncode == 0
    palletd.docker("rmi", "gc:1", check=True)
    again = build(palletd, "-t", "gc:1", str(ctx))
    assert again.returncode == 0 and "Using cache" in again.stdout
    palletd.docker("rmi", "gc:1", check=True)
    status, body = palletd.api("POST", "/build/prune")
    assert status == 200, body
    third = build(palletd, "-t", "gc:1", str(ctx))
    assert third.returncode == 0 and "Using cache" not in third.stdout
    assert palletd.docker("run", "--rm", "gc:1", "cat", "/c", check=True).stdout == "cached\n"


def test_client_going_away_cancels_the_build(palletd, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    p = subprocess.Popen(["docker", "build", str(ctx)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                         text=True)
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if line.strip() == "started":
                break
    finally:
        p.kill()
        p.wait()
    # the RUN is killed and everything it had goes, long before its sleep would end
    palletd.wait_for(lambda: leftovers(palletd) == {
        "containers": [], "snapshots": [], "runtime": [], "mounts": [], "build dirs": []},
        timeout=20, what="the cancelled build to clean up")


def test_args_env_precedence_and_network_modes(palletd, ctx, tmp_path):
    write(ctx, {"Dockerfile": """\
ARG V=meta
FROM busybox
ARG V
ARG A=default
ENV A=from-env
RUN echo "V=$V A=$A" > /args
RUN ls /sys/class/net | tr '\\n' ' ' > /net
RUN grep -c nameserver /etc/resolv.conf > /dns; grep -w "$(hostname)" /etc/hosts > /hosts || :
"""})
    iid = tmp_path / "iid"
    p = build(palletd, "-t", "args:1", "--iidfile", str(iid), "--build-arg", "A=ignored",
              "--build-arg", "UNUSED=1", str(ctx))
    assert p.returncode == 0, p.stderr
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in p.stdout
    # ENV wins over an ARG; a stage's bare ARG takes the value declared before FROM
    out = palletd.docker("run", "--rm", "args:1", "cat", "/args", "/net", check=True).stdout
    assert out == "V=meta A=from-env\neth0 lo "  # RUN's network: the default bridge
    dns, hosts = palletd.docker("run", "--rm", "args:1", "cat", "/dns", "/hosts",
                                check=True).stdout.splitlines()
    assert int(dns) >= 1 and hosts.startswith(palletd.subnet.rsplit(".", 1)[0]), hosts
    assert iid.read_text() == image_config(palletd, "args:1")["Id"]

    status, body = palletd.api("POST", "/build?networkmode=host&t=args:host&nocache=1")
    assert status == 200  # an empty body is no tar: the build fails in the stream
    assert "error" in json.dumps(body)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(ctx / "Dockerfile", "Dockerfile")
    from daemon_support import UnixHTTP

    c = UnixHTTP(palletd.sock, 120)
    try:
        c.request("POST", "/v1.41/build?networkmode=host&t=args:host&nocache=1",
                  body=buf.getvalue(), headers={"Content-Type": "application/x-tar"})
        msgs = [json.loads(x) for x in c.getresponse().read().splitlines() if x.strip()]
    finally:
        c.close()
    assert not any("error" in m for m in msgs), msgs
    def stable(names: list[str]) -> list[str]:  # veths come and go with other containers
        return sorted(n for n in names if not n.startswith("veth"))

    out = palletd.docker("run", "--rm", "args:host", "cat", "/net", check=True).stdout
    assert stable(out.split()) == stable(os.listdir("/sys/class/net"))
    assert len(out.split()) > 1
    # what is wrong with the request itself is an HTTP error, before any stream
    bad = palletd.api("POST", "/build?networkmode=container:x")
    assert bad[0] == 400 and "networkmode 'container:x': no such network" in bad[1]["message"]
    bad = palletd.api("POST", "/build?t=Not/Valid:tag")
    assert bad[0] == 400 and "invalid reference format" in bad[1]["message"]
    bad = palletd.api("POST", "/build?remote=https://example.com/repo.git")
    assert bad[0] == 400 and "git build contexts are not supported" in bad[1]["message"]
    bad = palletd.api("POST", "/build?buildargs=[1]")
    assert bad[0] == 400 and "buildargs must be a JSON object" in bad[1]["message"]


def test_concurrent_builds_and_api_stays_responsive(palletd, tmp_path):
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    procs = []
    for i in range(2):
        d = write(tmp_path / f"c{i}", {"Dockerfile": f"FROM busybox\nRUN sleep 1; echo {i} > /i\n"
                                       "COPY . /ctx\n", "f": str(i)})
        procs.append(subprocess.Popen(["docker", "build", "-t", f"conc:{i}", str(d)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, env=env, text=True))
    # while RUN steps sleep, the API answers (the builds run off the event loop)
    assert palletd.api("GET", "/images/json", timeout=5)[0] == 200
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, out + err
        assert palletd.docker("run", "--rm", f"conc:{i}", "cat", "/i", "/ctx/f",
                              check=True).stdout == f"{i}\n{i}"
    no_leftovers(palletd)


def test_shell_is_inherited_and_lowercase_dockerfile(palletd, ctx, tmp_path):
    write(ctx, {"dockerfile": 'FROM busybox\nSHELL ["/bin/echo", "via-shell:"]\n'})
    p = build(palletd, "-t", "shell:1", str(ctx))
    assert p.returncode == 0, p.stderr
    child = write(tmp_path / "child", {"Dockerfile": "FROM shell:1\nRUN hello world\n"
                                       'RUN ["/bin/echo", "exec-form"]\n'})
    p = build(palletd, str(child))
    assert p.returncode == 0, p.stderr
    assert "via-shell: hello world\n" in p.stdout and "exec-form\n" in p.stdout


def test_dockerfile_from_stdin(palletd, ctx):
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    df = b"FROM busybox\nRUN echo from-stdin > /s\n"
    p = subprocess.run(["docker", "build", "-t", "stdin:1", "-"], input=df,
                       capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    write(ctx, {"data.txt": "ctx\n"})
    p = subprocess.run(["docker", "build", "-t", "stdin:2", "-f-", str(ctx)],
                       input=df + b"COPY . /c\n", capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    # the Dockerfile travels under a random name, and the .dockerignore the CLI writes
    # hides it (and itself) from COPY
    out = palletd.docker("run", "--rm", "stdin:2", "sh", "-c", "cat /s; ls -A /c",
                         check=True).stdout.split()
    assert out == ["from-stdin", "data.txt"]


def test_a_dead_palletds_build_leftovers_are_cleaned(palletd, ctx, tmp_path):
    """palletd killed in the middle of a build leaves a mounted step and its snapshot;
    the next palletd's first build removes them."""
    from pallet.images.service import ImageService
    from pallet.snapshots.api import mount_all

    palletd.kill()
    svc = ImageService(palletd.root)
    try:
        top = svc.unpack("busybox")
        mounts = svc.snapshotter.prepare("build-0123456789abcdef", top)
    finally:
        svc.close()
    rootfs = Path(palletd.exec_root, "build", "tmpdead", "build-0123456789abcdef", "rootfs")
    mount_all(mounts, str(rootfs))
    palletd.start()
    write(ctx, {"Dockerfile": "FROM busybox\nRUN true\n"})
    assert build(palletd, str(ctx)).returncode == 0
    no_leftovers(palletd)


def test_run_limits_and_hosts(palletd, ctx):
    write(ctx, {"Dockerfile": """\
FROM busybox
RUN grep -wE 'myhost|other' /etc/hosts > /hosts; echo 6.6.6.6 junk >> /etc/hosts; \\
    df -k /dev/shm | tail -1 | awk '{print $2}' > /shm; \\
    m=/sys/fs/cgroup/memory; p=$m$(grep :memory: /proc/self/cgroup | cut -d: -f3); \\
    for f in $p/memory.limit_in_bytes $m/memory.limit_in_bytes; do \\
        [ -e $f ] && cat $f && break; done > /mem
"""})
    p = build(palletd, "-t", "limits:1", "--memory", "64m", "--shm-size", "16m",
              "--add-host", "myhost:10.1.2.3", str(ctx))
    assert p.returncode == 0, p.stdout + p.stderr
    out = palletd.docker("run", "--rm", "limits:1", "cat", "/hosts", "/shm", "/mem",
                         check=True).stdout.split("\n")
    assert out[:3] == ["10.1.2.3\tmyhost", "16384", str(64 << 20)]
    from pallet.images.service import ImageService

    svc = ImageService(palletd.root)
    try:
        svc.unpack_to_dir("limits:1", str(ctx / "unpacked"))
    finally:
        svc.close()
    # the step's /etc/hosts (and what the RUN wrote to it) is not part of the image
    assert not (ctx / "unpacked" / "etc" / "hosts").exists()
    assert (ctx / "unpacked" / "mem").exists()
    p = palletd.pallet("build", "-m", "32m", "--add-host", "other:10.9.9.9", "--no-cache",
                       "-t", "limits:2", str(ctx), timeout=180)
    assert p.returncode == 0, p.stderr
    out = palletd.docker("run", "--rm", "limits:2", "cat", "/hosts", "/mem",
                         check=True).stdout.split("\n")
    assert out[:2] == ["10.9.9.9\tother", str(32 << 20)]


def test_collection_during_a_build_keeps_what_it_needs(palletd, ctx, tmp_path):
    """A collection while a build runs (here: its base image removed, then `image
    prune`) keeps the base's layers and the steps already made: each step's image is
    named by the cache as it is made, and the build's lease covers the moments between."""
    from pallet.images.service import ImageService
    from pallet.testing.images import make_layout

    # a base image of its own (zstd layers: no blob shared with the busybox image)
    layout = make_layout("users", tmp_path / "base", compression="zstd")
    svc = ImageService(palletd.root)
    try:
        (base,) = svc.import_(str(layout), base_name="docker.io/library/gcbase")
    finally:
        svc.close()
    write(ctx, {"Dockerfile": f"FROM {base.name}\nCOPY f /f\nRUN echo waiting; sleep 2\n"
                'CMD ["cat /f"]\n', "f": "kept\n"})  # its ENTRYPOINT is sh -c
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    p = subprocess.Popen(["docker", "build", "-t", "gcbuild:1", str(ctx)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env, text=True)
    assert p.stdout is not None
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.strip() == "waiting":
            palletd.docker("rmi", base.name, check=True)
            palletd.docker("image", "prune", "-f", check=True)
            break
    lines += p.stdout.readlines()
    assert p.wait(timeout=120) == 0, "".join(lines)
    assert palletd.docker("run", "--rm", "gcbuild:1", check=True).stdout == "kept\n"
    svc = ImageService(palletd.root)
    try:  # every blob of the image is there
        svc.export(["gcbuild:1"], str(tmp_path / "layout"))
    finally:
        svc.close()
