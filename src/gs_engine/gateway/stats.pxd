cdef class RouteCounters:
    cdef public str name
    cdef public dict by_code
    cdef public Py_ssize_t inflight
    cdef public list buckets
    cdef public double duration_sum
    cdef public Py_ssize_t count


cdef class EndpointCounters:
    cdef public Py_ssize_t requests_total
    cdef public Py_ssize_t errors_total
