"""gbp_lab.sim — traffic for the lab: a Delivery Service relay over TCP, a client, and a tap.

* :mod:`.relay` — the DS relay (gbp-mls-binding.md §5): :class:`RelayThread` for synchronous code,
  :class:`Relay` (asyncio) underneath, the optional DS extension (HELLO/ROUTE/DELIVER/MEMBER_LEFT).
* :mod:`.client` — :class:`RelayClient`, a blocking client, and :func:`pump` for many clients.
* :mod:`.tap` — :class:`Tap` records what crosses the relay's sockets; :func:`write_pcap` turns it
  into Ethernet/IP/TCP packets in a pcap file, :func:`write_udp_pcapng` the QUIC relay's UDP
  datagrams into a pcapng.

Synchronous APIs only for notebook users; asyncio stays inside :class:`Relay`.
"""
from .client import Delivery, RelayClient, RelayClosedError, RelayTimeout, pump  # noqa: F401
from .relay import (  # noqa: F401
    DEFAULT_PORT,
    Deliver,
    DsExtensionError,
    DsType,
    Hello,
    HelloFlags,
    MemberLeft,
    RecordKind,
    Relay,
    RelayEvent,
    RelayThread,
    RelayWaitTimeout,
    Route,
    classify_record,
    decode_ds_message,
)
from .tap import Tap, TapEvent, TapKind, pcap_bytes, write_pcap, write_udp_pcapng  # noqa: F401
