"""Label keys on blobs, containerd's names so its GC rules read the same: a blob with
`GC_ROOT` is kept; `GC_REF_CONTENT + <suffix>` = <digest> keeps the referenced blob alive
while the referencing one is."""

GC_ROOT = "containerd.io/gc.root"
GC_REF_CONTENT = "containerd.io/gc.ref.content."
GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
# on a compressed layer blob: the digest of its uncompressed tar (the diffID)
UNCOMPRESSED = "containerd.io/uncompressed"
