"""Passive QUIC v1 (RFC 9000 / RFC 9001): packet protection, headers and frames, and a
connection observer that turns captured UDP datagrams into the bytes of each QUIC stream.

Sans-IO: bytes in, events out. Modules: :mod:`.protection` (keys, header protection, AEAD, key
update), :mod:`.packets` (varints, long/short headers, the frame walker), :mod:`.observer`
(connection tracking, TLS secrets by ClientHello random, CRYPTO/STREAM reassembly by offset).
"""
