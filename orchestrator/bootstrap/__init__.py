"""Making toolchain images, language-neutral: what the toolchain stage (stages/toolchain.py) calls on
when an image must be made, or a lock written.

spec.py says what shapes an image and so names it (package lists, spec hash, tag, labels, the
mmdebstrap call; pure). make.py makes the image: mmdebstrap's tarball plus the files of the `unpack`
packages and `wheels`, or a layer installed on a base image in a container, written by osless and
loaded with `docker load` (image/toolchain_archive.py). What it uses: debian.py downloads Debian
packages with apt on the host (private state, the archive's signatures checked), wheels.py fetches
pinned wheels from a PEP 691 index, rootfs.py reads the tarball's facts and appends files to it,
layer.py resolves and downloads a layer's packages against the base image's dpkg status.

lock.py is a toolchain's lock file (pure), lock_checks.py holds a toolchain to its lock, locking.py
makes one (`osless lock`).
"""
