cimport cython

from gs_engine.gateway.stats cimport EndpointCounters


cdef class EndpointPool


@cython.final
cdef class UpstreamConnection:
    cdef public EndpointPool pool
    cdef public object transport
    cdef public object parser
    cdef public object sink
    cdef public double idle_since
    cdef public bint closed
    cdef public bint got_bytes
    cdef public Py_ssize_t reads
    cdef public bint tunnel
    cdef public object _head
    cdef public bint _head_only

    @cython.locals(sink=object, client=object, held=bint)
    cpdef data_received(self, bytes data)
    @cython.locals(raw=bytes, end=Py_ssize_t, head=bytes, status=int)
    cpdef on_headers_complete(self)
    cpdef attach(self, sink, bint head_only)
    cpdef close(self)
    cpdef abort(self)


@cython.final
cdef class EndpointPool:
    cdef public object endpoint
    cdef public str ep_id
    cdef public Py_ssize_t max_idle
    cdef public list idle
    cdef public set busy
    cdef public bint removed
    cdef public EndpointCounters counters

    cpdef UpstreamConnection take_idle(self, double now, double idle_timeout)
    cpdef release(self, UpstreamConnection conn, double now)
    cpdef forget(self, UpstreamConnection conn)
