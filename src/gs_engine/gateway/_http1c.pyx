# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled twin of `http1.response_fields_py`: one pass over a response head in C.

Same arguments, same answer (the test suite checks the two against each other); built only
where a C compiler is at hand, otherwise the Python function is used.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcpy

from gs_engine.gateway.http1 import HOP_BY_HOP, PLAIN_CONNECTION

cdef enum:
    KEEP = 0
    DROP = 1
    CONTENT_LENGTH = 2
    TRANSFER_ENCODING = 3
    CONNECTION = 4
    UPGRADE = 5

cdef frozenset _PLAIN_CONNECTION = PLAIN_CONNECTION
cdef dict _KINDS = {
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"connection": CONNECTION,
    b"upgrade": UPGRADE,
}
# the dropped names as C strings (the tuple keeps them alive), with their lengths and kinds
cdef tuple _DROPPED = tuple(sorted(HOP_BY_HOP))
cdef enum:
    MAX_NAMES = 32
cdef const unsigned char* _names[MAX_NAMES]
cdef Py_ssize_t _lengths[MAX_NAMES]
cdef int _kinds[MAX_NAMES]
cdef Py_ssize_t _count = len(_DROPPED)
if _count > MAX_NAMES:
    raise ImportError("more hop-by-hop names than _http1c can hold")
cdef Py_ssize_t _i
for _i in range(_count):
    _names[_i] = <bytes>_DROPPED[_i]
    _lengths[_i] = len(<bytes>_DROPPED[_i])
    _kinds[_i] = _KINDS.get(_DROPPED[_i], DROP)


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint _same_name(const unsigned char* s, const unsigned char* lower_name, Py_ssize_t n) noexcept nogil:
    """Whether s[:n] equals `lower_name[:n]` ignoring ASCII case."""
    cdef Py_ssize_t i
    for i in range(n):
        if _lower(s[i]) != lower_name[i]:
            return False
    return True


cdef inline int _kind(const unsigned char* s, Py_ssize_t n, const unsigned char* rid, Py_ssize_t rid_n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(_count):
        if _lengths[i] == n and _same_name(s, _names[i], n):
            return _kinds[i]
    if n == rid_n and _same_name(s, rid, n):
        return DROP
    return KEEP


def response_fields(bytes fields, bytes request_id_header):
    cdef const unsigned char* s = fields
    cdef Py_ssize_t n = len(fields)
    cdef const unsigned char* rid = request_id_header
    cdef Py_ssize_t rid_n = len(request_id_header)
    cdef Py_ssize_t p = 0, line, next_line, colon, name_end, vstart, vend, kept_from = 0
    cdef const unsigned char* found
    cdef int kind
    cdef list kept = None
    cdef object content_length = None, upgrade = None
    cdef list conn_values = None
    cdef bint chunked = False
    cdef bytes value
    # every "\r\n" may start a line the gateway drops (as the Python twin's pattern sees it)
    p = _crlf(s, 0, n)
    while p < n:
        line = p + 2
        next_line = _crlf(s, line, n)
        found = <const unsigned char*>memchr(s + line, 58, next_line - line)  # ':'
        if found == NULL:
            p = next_line
            continue
        colon = found - s
        name_end = colon
        while name_end > line and (s[name_end - 1] == 32 or s[name_end - 1] == 9):
            name_end -= 1
        kind = _kind(s + line, name_end - line, rid, rid_n)
        if kind == KEEP:
            p = next_line
            continue
        vstart = colon + 1
        while vstart < n and (s[vstart] == 32 or s[vstart] == 9):
            vstart += 1
        vend = vstart
        while vend < n and s[vend] != 13 and s[vend] != 10:
            vend += 1
        if kept is None:
            kept = []
        if p > kept_from:
            kept.append(PyBytes_FromStringAndSize(<const char*>s + kept_from, p - kept_from))
        kept_from = vend
        if kind != DROP:
            value = PyBytes_FromStringAndSize(<const char*>s + vstart, vend - vstart)
            if kind == CONTENT_LENGTH:
                content_length = value.strip()
            elif kind == TRANSFER_ENCODING:
                chunked = True
            elif kind == CONNECTION:
                if value.strip().lower() not in _PLAIN_CONNECTION:
                    if conn_values is None:
                        conn_values = [value]
                    else:
                        conn_values.append(value)
            else:
                upgrade = value.strip()
        p = _crlf(s, vend, n)
    if kept is None:
        return fields, None, False, None, None
    if kept_from < n:
        kept.append(PyBytes_FromStringAndSize(<const char*>s + kept_from, n - kept_from))
    return join(kept), content_length, chunked, conn_values, upgrade


cdef inline Py_ssize_t _crlf(const unsigned char* s, Py_ssize_t at, Py_ssize_t n) noexcept nogil:
    """Where the next "\\r\\n" starts at or after `at`, or n when there is none."""
    cdef const unsigned char* cr
    while at + 1 < n:
        cr = <const unsigned char*>memchr(s + at, 13, n - at - 1)
        if cr == NULL:
            return n
        at = cr - s
        if s[at + 1] == 10:
            return at
        at += 1
    return n


def join(pieces):
    """b"".join(pieces) for a list or tuple of bytes, without the buffer protocol per piece."""
    cdef Py_ssize_t total = 0, size, at = 0
    cdef object piece
    cdef bytes out
    cdef char* dest
    if type(pieces) is not list and type(pieces) is not tuple:
        return b"".join(pieces)
    for piece in pieces:
        if type(piece) is not bytes:
            return b"".join(pieces)
        total += PyBytes_GET_SIZE(piece)
    out = PyBytes_FromStringAndSize(NULL, total)
    dest = PyBytes_AS_STRING(out)
    for piece in pieces:
        size = PyBytes_GET_SIZE(piece)
        memcpy(dest + at, PyBytes_AS_STRING(piece), size)
        at += size
    return out



def request_id(bytes prefix, unsigned long long n):
    """b"%s-%x" % (prefix, n): a request id from the process prefix and a counter."""
    cdef char digits[16]
    cdef int count = 0, i
    cdef Py_ssize_t size = PyBytes_GET_SIZE(prefix)
    cdef bytes out
    cdef char* dest
    while True:
        digits[count] = b"0123456789abcdef"[n & 15]
        count += 1
        n >>= 4
        if n == 0:
            break
    out = PyBytes_FromStringAndSize(NULL, size + 1 + count)
    dest = PyBytes_AS_STRING(out)
    memcpy(dest, PyBytes_AS_STRING(prefix), size)
    dest[size] = 45  # '-'
    for i in range(count):
        dest[size + 1 + i] = digits[count - 1 - i]
    return out
