# A packet socket on lo that receives copies of COUNT UDP datagrams and is
# closed without reading them: the kernel purges its queue, one drop per
# copy (QUEUE_PURGE where the kernel names it). Prints how many copies the
# socket had queued (PACKET_STATISTICS: received minus dropped), then
# closes it.  python3 spec/helpers/afpacket.py COUNT
import socket
import struct
import sys
import time

count = int(sys.argv[1])
SOL_PACKET, PACKET_STATISTICS, ETH_P_ALL = 263, 6, 0x0003
tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
tap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
tap.bind(("lo", 0))
# the datagrams go to a socket that reads them all: no drop but the purge
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(count):
    tx.sendto(b"dropprobe", rx.getsockname())
    rx.recv(64)
tx.close()
rx.close()
time.sleep(0.2)
packets, drops = struct.unpack("II", tap.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
print(packets - drops, flush=True)
tap.close()
