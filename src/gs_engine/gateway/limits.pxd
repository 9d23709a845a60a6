cdef class TokenBucket:
    cdef public double rate
    cdef public double burst
    cdef public double _tokens
    cdef public double _at

    cpdef double take(self, double now)


cdef class RetryBudget:
    cdef public double ratio
    cdef public Py_ssize_t min_per_second
    cdef public long long window
    cdef public Py_ssize_t requests
    cdef public Py_ssize_t _retries

    cpdef roll(self, double now)
    cpdef bint try_retry(self, double now)
