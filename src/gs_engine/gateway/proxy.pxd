cimport cython

from gs_engine.gateway.balancer cimport Balancer
from gs_engine.gateway.limits cimport RetryBudget, TokenBucket
from gs_engine.gateway.outliers cimport OutlierDetector
from gs_engine.gateway.stats cimport RouteCounters
from gs_engine.gateway.upstream cimport EndpointPool, UpstreamConnection


@cython.final
cdef class RouteRuntime:
    cdef public object route
    cdef public str name
    cdef public str service
    cdef public RouteCounters counters
    cdef public tuple pools
    cdef public tuple ids
    cdef public double connect_timeout
    cdef public double response_timeout
    cdef public double idle_timeout
    cdef public dict index_of
    cdef public Py_ssize_t retries
    cdef public bint retry_idempotent
    cdef public RetryBudget budget
    cdef public TokenBucket bucket
    cdef public object max_body
    cdef public bint activate
    cdef public double activation_timeout
    cdef public Py_ssize_t max_held
    cdef public str namespace
    cdef public str service_name


@cython.final
cdef class ProxyState:
    cdef public object table
    cdef public list runtimes
    cdef public Balancer balancer
    cdef public dict pools
    cdef public object ids
    cdef public bytes rid_header
    cdef public Py_ssize_t max_url
    cdef public Py_ssize_t max_header_bytes
    cdef public RouteCounters unmatched
    cdef public Py_ssize_t upstream_errors
    cdef public set clients
    cdef public object loop
    cdef public OutlierDetector outliers
    cdef public object max_per_client
    cdef public dict per_client
    cdef public double header_timeout
    cdef public object activator
    cdef public bytes via_rid
    cdef public bytes via_line
    cdef public frozenset special_request_fields



cdef class Exchange


@cython.final
cdef class ClientConnection:
    cdef public ProxyState state
    cdef public object loop
    cdef public object transport
    cdef public object parser
    cdef public bytes peer
    cdef public bytes xff_line
    cdef public object queue
    cdef public Exchange cur
    cdef public bytes url
    cdef public list headers
    cdef public Py_ssize_t header_bytes
    cdef public object reject
    cdef public int read_paused
    cdef public bint write_paused
    cdef public double write_resumed
    cdef public Py_ssize_t pending_bytes
    cdef public bint closed
    cdef public bint eof
    cdef public bint broken
    cdef public bint advancing
    cdef public double last_active
    cdef public Exchange tunnel
    cdef public list wbuf
    cdef public bint in_head
    cdef public double head_started
    cdef public bint peer_counted

    cpdef pause_reading(self, int why)
    cpdef resume_reading(self, int why)
    cpdef add_pending(self, Py_ssize_t n)
    cpdef write(self, bytes data)
    cpdef flush(self)
    cpdef close(self)
    @cython.locals(head=Exchange)
    cpdef _advance(self)
    cpdef finish(self, Exchange ex, now=*)
    @cython.locals(tunnel=Exchange, now=double)
    cpdef data_received(self, bytes data)


@cython.locals(
    state=ProxyState,
    method=bytes,
    rid_header=bytes,
    fwd=list,
    special=frozenset,
    others=list,
    keep_alive=bint,
    http11=bint,
    head_only=bint,
    expect_continue=bint,
    ex=Exchange,
    rt=RouteRuntime,
    target=bytes,
    lname=bytes,
    bad=str,
)
cpdef Exchange _build_exchange(ClientConnection conn)


@cython.final
cdef class Exchange:
    cdef public ClientConnection conn
    cdef public RouteRuntime rt
    cdef public bytes method
    cdef public bint head_only
    cdef public bint http11
    cdef public bytes rid
    cdef public bint keep_alive
    cdef public bint close_after
    cdef public bytes head
    cdef public bint chunked
    cdef public bint upgrade
    cdef public int local_status
    cdef public str local_detail
    cdef public int retry_after
    cdef public bint started
    cdef public bint request_done
    cdef public bint response_done
    cdef public bint response_started
    cdef public EndpointPool pool
    cdef public UpstreamConnection up
    cdef public bint reused
    cdef public bint retried
    cdef public list replay
    cdef public Py_ssize_t replay_size
    cdef public list pending
    cdef public Py_ssize_t pending_size
    cdef public object timer
    cdef public double deadline
    cdef public int mode
    cdef public bint up_close_delimited
    cdef public int status
    cdef public double t0
    cdef public bint counted
    cdef public list client_tunnel_data
    cdef public long long body_left
    cdef public Py_ssize_t attempts
    cdef public bint expect_continue
    cdef public Py_ssize_t seen_reads
    cdef public double quiet_since

    cpdef set_local(self, int status, str detail, int retry_after=*)
    @cython.locals(conn=ClientConnection, counters=RouteCounters, rt=RouteRuntime, now=double,
                   bucket=TokenBucket, budget=RetryBudget, wait=double)
    cpdef start(self)
    @cython.locals(rt=RouteRuntime, state=ProxyState, balancer=Balancer, outstanding=dict, ids=tuple,
                   n=Py_ssize_t, first=Py_ssize_t, second=Py_ssize_t, pool=EndpointPool, ep_id=str,
                   idle=list, up=UpstreamConnection)
    cpdef resume(self, double now)
    @cython.locals(conn=ClientConnection, state=ProxyState, pool=EndpointPool, outliers=OutlierDetector,
                   line_end=Py_ssize_t, status_line=bytes, fields=bytes, chunked=bint, framing=bytes)
    cpdef on_upstream_head(self, int status, bytes head)
    @cython.locals(mode=int, conn=ClientConnection, wbuf=list)
    cpdef on_upstream_body(self, data)
    @cython.locals(conn=ClientConnection, up=UpstreamConnection, up_pool=EndpointPool, pool=EndpointPool,
                   outstanding=dict, counters=RouteCounters, by_code=dict, now=double, seconds=double,
                   ep_id=str, left=Py_ssize_t, status=int)
    cpdef on_upstream_complete(self, bint keep_alive)
    cpdef _use_pool(self, EndpointPool pool)
    cpdef _release_pool(self)
    cpdef _connect(self)
    cpdef bint _may_retry(self, double now)
    @cython.locals(conn=ClientConnection, parts=list)
    cpdef _attach(self, UpstreamConnection up, now=*)
    cpdef _arm_timer(self, now=*)
    cpdef _cancel_timer(self)
    cpdef _respond_local(self, int status, str detail)
    cpdef _record(self, int status, now=*)
