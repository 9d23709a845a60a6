cdef class OutlierDetector:
    cdef public Py_ssize_t threshold
    cdef public double base_seconds
    cdef public double max_seconds
    cdef public dict fails
    cdef public dict ejections
    cdef public dict ejected
