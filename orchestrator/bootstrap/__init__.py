"""Bootstrap machinery beyond mmdebstrap, language-neutral: what a toolchain recipe's `unpack` and
`wheels` add to the root filesystem tarball before `docker import`.

debian.py downloads Debian packages with apt on the host (private state, the archive's signatures
checked), wheels.py fetches pinned wheels from a PEP 691 index, rootfs.py reads the tarball's facts
and appends their files to it.
"""
