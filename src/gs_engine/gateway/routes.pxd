cimport cython


@cython.final
cdef class RouteTable:
    cdef public tuple routes
    cdef public dict _by_host
    cdef public dict _any_host
    cdef public dict _cache

    @cython.locals(q=Py_ssize_t, only_path=bytes, query=bytes, key=bytes, cache=dict, rest=bytes)
    cpdef match(self, host, bytes path)
