"""gbp_lab.dissectors — scapy layers for every message of the Group Protocol Stack.

The layers call :mod:`gbp_lab.core`'s codecs; they never parse the wire a second time.
"""
