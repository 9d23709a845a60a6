cdef class Balancer:
    cdef public object random
    cdef public dict _inflight
    cdef public dict outstanding
