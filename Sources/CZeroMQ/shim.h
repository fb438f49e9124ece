// libzmq: the transport for every message between coordinator, servers and workers.
#include <zmq.h>
