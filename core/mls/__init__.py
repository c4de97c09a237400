"""gbp_lab.core.mls — Messaging Layer Security (RFC 9420) in pure Python, laid out like openmls."""
