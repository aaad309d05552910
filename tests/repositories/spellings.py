"""Hosts that are the cloud metadata service or this machine, spelled every way a URL parser,
curl or `inet_aton` accepts (the reviewer's finding 9, and its relatives)."""


def _full_width(ascii_text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


METADATA = [
    "169.254.169.254",
    "2852039166",  # the integer
    "0xa9fea9fe",  # hex
    "0xA9.0xFE.0xA9.0xFE",  # hex per part
    "0251.0376.0251.0376",  # octal
    "169.254.43518",  # short form: the last part fills the remaining bytes
    "169.254.169.254.",  # trailing dot
    _full_width("169.254.169.254"),  # full-width digits and dots (IDNA maps them)
    "[::ffff:169.254.169.254]",  # IPv4-mapped IPv6
    "[::ffff:a9fe:a9fe]",
    "[::169.254.169.254]",  # IPv4-compatible IPv6
    "[64:ff9b::169.254.169.254]",  # NAT64
    "[2002:a9fe:a9fe::1]",  # 6to4
    "[fd00:ec2::254]",  # AWS's IPv6 metadata address
    "100.100.100.200",  # Alibaba Cloud's
]
LOOPBACK = [
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
    "LOCALHOST.",
]
OTHER_FORBIDDEN = [
    "0",
    "0.0.0.0",
    "[::]",
    "224.0.0.1",
    "10.0.0.7",
    "192.168.1.1",
    "[fd12::1]",
    "100.64.0.1",
    "[fe80::1%25eth0]",
]
