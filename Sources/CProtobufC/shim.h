// protobuf-c runtime: the encoding of every control message.
#include <protobuf-c/protobuf-c.h>
