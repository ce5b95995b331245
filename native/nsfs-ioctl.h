// ioctl_ns(2) request numbers, for every native file that asks nsfs about a namespace fd
// (nsfs.cc, procscan.cc). Defined here because distribution headers lag the kernel:
// Debian 12 ships 6.1 uapi headers without NS_GET_ID.
#pragma once

#include <sys/ioctl.h>

#include <cstdint>

#ifndef NSIO
#define NSIO 0xb7
#endif
#ifndef NS_GET_USERNS
#define NS_GET_USERNS _IO(NSIO, 0x1)
#endif
#ifndef NS_GET_PARENT
#define NS_GET_PARENT _IO(NSIO, 0x2)
#endif
#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(NSIO, 0x3)
#endif
#ifndef NS_GET_OWNER_UID
#define NS_GET_OWNER_UID _IO(NSIO, 0x4)
#endif
#ifndef NS_GET_ID
#define NS_GET_ID _IOR(NSIO, 13, uint64_t)
#endif
