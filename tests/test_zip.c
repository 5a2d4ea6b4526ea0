/* Tests of the zip codec: writer/reader round trips, archives written by PyTorch and Python's
 * zipfile, and a corpus of corrupted archives that must fail cleanly with a useful message. */
#define _GNU_SOURCE /* mkdtemp, pwrite, ftruncate */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "fileio.h"
#include "zip.h"
#include "testutil.h"

/* ---- Archives written by other programs, captured as bytes ---- */

/* torch.save({'a': torch.arange(10.), 'bb': torch.ones(3, 3)}, 't113.pt') with PyTorch 1.13 */
static const unsigned char torch113_pt[987] = {
    0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x15, 0x00, 0x74, 0x31,
    0x31, 0x33, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2e, 0x70, 0x6b, 0x6c, 0x46, 0x42, 0x11, 0x00, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61, 0x71, 0x01, 0x63, 0x74,
    0x6f, 0x72, 0x63, 0x68, 0x2e, 0x5f, 0x75, 0x74, 0x69, 0x6c, 0x73, 0x0a, 0x5f, 0x72, 0x65, 0x62,
    0x75, 0x69, 0x6c, 0x64, 0x5f, 0x74, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x5f, 0x76, 0x32, 0x0a, 0x71,
    0x02, 0x28, 0x28, 0x58, 0x07, 0x00, 0x00, 0x00, 0x73, 0x74, 0x6f, 0x72, 0x61, 0x67, 0x65, 0x71,
    0x03, 0x63, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x0a, 0x46, 0x6c, 0x6f, 0x61, 0x74, 0x53, 0x74, 0x6f,
    0x72, 0x61, 0x67, 0x65, 0x0a, 0x71, 0x04, 0x58, 0x01, 0x00, 0x00, 0x00, 0x30, 0x71, 0x05, 0x58,
    0x03, 0x00, 0x00, 0x00, 0x63, 0x70, 0x75, 0x71, 0x06, 0x4b, 0x0a, 0x74, 0x71, 0x07, 0x51, 0x4b,
    0x00, 0x4b, 0x0a, 0x85, 0x71, 0x08, 0x4b, 0x01, 0x85, 0x71, 0x09, 0x89, 0x63, 0x63, 0x6f, 0x6c,
    0x6c, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x0a, 0x4f, 0x72, 0x64, 0x65, 0x72, 0x65, 0x64,
    0x44, 0x69, 0x63, 0x74, 0x0a, 0x71, 0x0a, 0x29, 0x52, 0x71, 0x0b, 0x74, 0x71, 0x0c, 0x52, 0x71,
    0x0d, 0x58, 0x02, 0x00, 0x00, 0x00, 0x62, 0x62, 0x71, 0x0e, 0x68, 0x02, 0x28, 0x28, 0x68, 0x03,
    0x68, 0x04, 0x58, 0x01, 0x00, 0x00, 0x00, 0x31, 0x71, 0x0f, 0x68, 0x06, 0x4b, 0x09, 0x74, 0x71,
    0x10, 0x51, 0x4b, 0x00, 0x4b, 0x03, 0x4b, 0x03, 0x86, 0x71, 0x11, 0x4b, 0x03, 0x4b, 0x01, 0x86,
    0x71, 0x12, 0x89, 0x68, 0x0a, 0x29, 0x52, 0x71, 0x13, 0x74, 0x71, 0x14, 0x52, 0x71, 0x15, 0x75,
    0x2e, 0x50, 0x4b, 0x07, 0x08, 0x9f, 0x8e, 0x50, 0x8b, 0xe1, 0x00, 0x00, 0x00, 0xe1, 0x00, 0x00,
    0x00, 0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x26, 0x00, 0x74,
    0x31, 0x31, 0x33, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x30, 0x46, 0x42, 0x22, 0x00, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40,
    0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40, 0x00, 0x00, 0xc0, 0x40, 0x00, 0x00, 0xe0, 0x40,
    0x00, 0x00, 0x00, 0x41, 0x00, 0x00, 0x10, 0x41, 0x50, 0x4b, 0x07, 0x08, 0x69, 0xe7, 0xa5, 0xe6,
    0x28, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x0b, 0x00, 0x1f, 0x00, 0x74, 0x31, 0x31, 0x33, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f,
    0x31, 0x46, 0x42, 0x1b, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f,
    0x00, 0x00, 0x80, 0x3f, 0x50, 0x4b, 0x07, 0x08, 0x77, 0xaf, 0xc9, 0x2e, 0x24, 0x00, 0x00, 0x00,
    0x24, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00,
    0x22, 0x00, 0x74, 0x31, 0x31, 0x33, 0x2f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x46, 0x42,
    0x1e, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x33, 0x0a, 0x50, 0x4b, 0x07, 0x08, 0xd1, 0x9e, 0x67, 0x55, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x50, 0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x9f, 0x8e, 0x50, 0x8b, 0xe1, 0x00, 0x00, 0x00, 0xe1, 0x00, 0x00, 0x00, 0x0d, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x74, 0x31, 0x31, 0x33, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2e, 0x70, 0x6b, 0x6c, 0x50, 0x4b, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x69, 0xe7, 0xa5,
    0xe6, 0x28, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31, 0x01, 0x00, 0x00, 0x74, 0x31, 0x31, 0x33, 0x2f,
    0x64, 0x61, 0x74, 0x61, 0x2f, 0x30, 0x50, 0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x77, 0xaf, 0xc9, 0x2e, 0x24, 0x00, 0x00, 0x00, 0x24, 0x00,
    0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xb8, 0x01, 0x00, 0x00, 0x74, 0x31, 0x31, 0x33, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x31, 0x50,
    0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd1,
    0x9e, 0x67, 0x55, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x34, 0x02, 0x00, 0x00, 0x74, 0x31, 0x31,
    0x33, 0x2f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x50, 0x4b, 0x06, 0x06, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x1e, 0x03, 0x2d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x92, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x50, 0x4b, 0x06, 0x07, 0x00, 0x00, 0x00, 0x00, 0x79, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x04,
    0x00, 0xe7, 0x00, 0x00, 0x00, 0x92, 0x02, 0x00, 0x00, 0x00, 0x00,
};

/* Python zipfile on an unseekable stream (data descriptors), with an archive comment:
 * doc/readme.txt deflated (the fox sentence x 20), doc/raw.bin stored (bytes 0..255) */
static const unsigned char pyzip_zip[589] = {
    0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x64, 0x6f,
    0x63, 0x2f, 0x72, 0x65, 0x61, 0x64, 0x6d, 0x65, 0x2e, 0x74, 0x78, 0x74, 0x0b, 0xc9, 0x48, 0x55,
    0x28, 0x2c, 0xcd, 0x4c, 0xce, 0x56, 0x48, 0x2a, 0xca, 0x2f, 0xcf, 0x53, 0x48, 0xcb, 0xaf, 0x50,
    0xc8, 0x2a, 0xcd, 0x2d, 0x28, 0x56, 0xc8, 0x2f, 0x4b, 0x2d, 0x52, 0x28, 0x01, 0x4a, 0xe7, 0x24,
    0x56, 0x55, 0x2a, 0xa4, 0xe4, 0xa7, 0xeb, 0x71, 0x85, 0x8c, 0x2a, 0x1e, 0x55, 0x3c, 0xaa, 0x98,
    0xda, 0x8a, 0x01, 0x50, 0x4b, 0x07, 0x08, 0xc5, 0x0d, 0xd0, 0x56, 0x37, 0x00, 0x00, 0x00, 0x84,
    0x03, 0x00, 0x00, 0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00,
    0x00, 0x64, 0x6f, 0x63, 0x2f, 0x72, 0x61, 0x77, 0x2e, 0x62, 0x69, 0x6e, 0x00, 0x01, 0x02, 0x03,
    0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,
    0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43,
    0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53,
    0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63,
    0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73,
    0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93,
    0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2, 0xa3,
    0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3,
    0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3,
    0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3,
    0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf2, 0xf3,
    0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0x50, 0x4b, 0x07, 0x08,
    0x73, 0x8c, 0x05, 0x29, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x50, 0x4b, 0x01, 0x02,
    0x14, 0x03, 0x14, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0xc5, 0x0d, 0xd0, 0x56,
    0x37, 0x00, 0x00, 0x00, 0x84, 0x03, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x64, 0x6f, 0x63, 0x2f, 0x72, 0x65,
    0x61, 0x64, 0x6d, 0x65, 0x2e, 0x74, 0x78, 0x74, 0x50, 0x4b, 0x01, 0x02, 0x14, 0x03, 0x14, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x73, 0x8c, 0x05, 0x29, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x01, 0x73, 0x00, 0x00, 0x00, 0x64, 0x6f, 0x63, 0x2f, 0x72, 0x61, 0x77, 0x2e, 0x62, 0x69,
    0x6e, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x75, 0x00, 0x00,
    0x00, 0xac, 0x01, 0x00, 0x00, 0x16, 0x00, 0x6d, 0x61, 0x64, 0x65, 0x20, 0x62, 0x79, 0x20, 0x70,
    0x79, 0x74, 0x68, 0x6f, 0x6e, 0x20, 0x7a, 0x69, 0x70, 0x66, 0x69, 0x6c, 0x65,
};

/* ---- Helpers ---- */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define MAX32 0xFFFFFFFFu

static char tmpdir[256];

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void tmp_path(char *buf, size_t n, const char *leaf)
{
    snprintf(buf, n, "%s/%s", tmpdir, leaf);
}

typedef struct rec {
    const char *name;
    const void *data;
    size_t size;
    int deflate;
} rec;

static int write_zip(const char *path, unsigned flags, const rec *r, size_t n)
{
    npe_error err = {0};
    npe_zip_writer *w;
    int rc = npe_zip_writer_open(path, flags, &w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = npe_zip_writer_add(w, r[i].name, r[i].data, r[i].size, r[i].deflate, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc) {
            npe_zip_writer_abort(w);
            return rc;
        }
    }
    rc = npe_zip_writer_finish(w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

/* Write r to a scratch file and return the archive's bytes (malloc'd, exact size). */
static unsigned char *build(unsigned flags, const rec *r, size_t n, size_t *size)
{
    char path[512];
    tmp_path(path, sizeof(path), "build.zip");
    *size = 0;
    if (write_zip(path, flags, r, n))
        return NULL;
    char *text;
    npe_error err = {0};
    int rc = npe_read_file(path, 64u << 20, &text, size, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    unlink(path);
    if (rc)
        return NULL;
    unsigned char *b = malloc(*size ? *size : 1);
    memcpy(b, text, *size);
    free(text);
    return b;
}

/* Offset of the local (PK\3\4) or central (PK\1\2) header for name, found by scanning the bytes
 * (independently of the reader); SIZE_MAX when absent. */
static size_t find_header(const unsigned char *b, size_t n, uint32_t sig, const char *name)
{
    size_t nl = strlen(name), fixed = sig == SIG_CENTRAL ? 46 : 30;
    size_t len_at = sig == SIG_CENTRAL ? 28 : 26;
    for (size_t i = 0; i + fixed + nl <= n; i++)
        if (get32(b + i) == sig && get16(b + i + len_at) == nl && memcmp(b + i + fixed, name, nl) == 0)
            return i;
    return SIZE_MAX;
}

/* Open a copy of b that is exactly n bytes long (so AddressSanitizer sees any overread) and
 * expect failure with code and a message naming the archive, s1 and s2. */
static void expect_open_fail_at(int line, const unsigned char *b, size_t n, int code, const char *s1,
                                const char *s2)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, b, n);
    npe_zip_reader *z = NULL;
    npe_error err = {0};
    int rc = npe_zip_open_mem(n ? copy : NULL, n, "bad.zip", &z, &err);
    tu_checks++;
    if (rc != code || z != NULL || !strstr(err.msg, "bad.zip") || (s1 && !strstr(err.msg, s1)) ||
        (s2 && !strstr(err.msg, s2))) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected open of %zu bytes to fail with %d naming '%s' and '%s'; got %d: %s\n",
                __FILE__, line, n, code, s1 ? s1 : "", s2 ? s2 : "", rc, err.msg);
    } else if (getenv("NPE_TEST_VERBOSE")) {
        printf("line %d: %s\n", line, err.msg);
    }
    npe_zip_close(z);
    free(copy);
}
#define EXPECT_OPEN_FAIL(b, n, code, s1, s2) expect_open_fail_at(__LINE__, b, n, code, s1, s2)

/* Check that a call failed with code and a message containing s1 and s2. */
static void expect_err_at(int line, int rc, const npe_error *err, int code, const char *s1, const char *s2)
{
    tu_checks++;
    if (rc != code || err->code != code || (s1 && !strstr(err->msg, s1)) || (s2 && !strstr(err->msg, s2))) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected error %d naming '%s' and '%s'; got %d: %s\n", __FILE__, line,
                code, s1 ? s1 : "", s2 ? s2 : "", rc, err->msg);
    } else if (getenv("NPE_TEST_VERBOSE")) {
        printf("line %d: %s\n", line, err->msg);
    }
}
#define EXPECT_ERR(rc, err, code, s1, s2) expect_err_at(__LINE__, rc, err, code, s1, s2)

static npe_zip_reader *open_ok(const unsigned char *b, size_t n)
{
    npe_zip_reader *z = NULL;
    npe_error err = {0};
    int rc = npe_zip_open_mem(b, n, "good.zip", &z, &err);
    CHECK_MSG(rc == 0 && z, "%s", err.msg);
    return rc ? NULL : z;
}

/* ---- Archives from PyTorch and Python ---- */

static void test_torch113(void)
{
    npe_zip_reader *z = open_ok(torch113_pt, sizeof(torch113_pt));
    if (!z)
        return;
    /* Expected values printed by Python's zipfile for the same bytes. */
    static const struct {
        const char *name;
        uint64_t size, data_offset;
        uint32_t crc;
    } want[] = {
        {"t113/data.pkl", 225, 64, 0x8b508e9f},
        {"t113/data/0", 40, 384, 0xe6a5e769},
        {"t113/data/1", 36, 512, 0x2ec9af77},
        {"t113/version", 2, 640, 0x55679ed1},
    };
    CHECK_EQ_INT(npe_zip_count(z), 4);
    CHECK(npe_zip_base(z) == torch113_pt);
    CHECK_EQ_INT(npe_zip_file_size(z), sizeof(torch113_pt));
    for (size_t i = 0; i < 4 && i < npe_zip_count(z); i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        CHECK_STR(e->name, want[i].name);
        CHECK_EQ_INT(e->size, want[i].size);
        CHECK_EQ_INT(e->comp_size, want[i].size);
        CHECK_EQ_INT(e->data_offset, want[i].data_offset);
        CHECK_EQ_INT(e->crc32, want[i].crc);
        CHECK_EQ_INT(e->method, 0);
        CHECK(npe_zip_find(z, want[i].name) == e);
    }
    CHECK(npe_zip_entry_at(z, 4) == NULL);
    CHECK(npe_zip_find(z, "t113/data/2") == NULL);
    CHECK(npe_zip_find(z, "data.pkl") == NULL);

    npe_error err = {0};
    const void *v;
    const npe_zip_entry *e = npe_zip_find(z, "t113/data/0");
    int rc = npe_zip_view(z, e, &v, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        float f[10];
        memcpy(f, v, sizeof(f)); /* torch.arange(10.) */
        for (int i = 0; i < 10; i++)
            CHECK(f[i] == (float)i);
        CHECK((const unsigned char *)v == torch113_pt + 384); /* zero copy */
    }
    e = npe_zip_find(z, "t113/data/1");
    rc = npe_zip_view(z, e, &v, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        float f[9];
        memcpy(f, v, sizeof(f)); /* torch.ones(3, 3) */
        for (int i = 0; i < 9; i++)
            CHECK(f[i] == 1.0f);
    }
    void *d;
    size_t n;
    rc = npe_zip_read(z, npe_zip_find(z, "t113/version"), 16, &d, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(n, 2);
        CHECK_STR((char *)d, "3\n");
        free(d);
    }
    rc = npe_zip_read(z, npe_zip_find(z, "t113/data.pkl"), 1 << 20, &d, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(n, 225);
        CHECK(((unsigned char *)d)[0] == 0x80 && ((unsigned char *)d)[1] == 2); /* pickle protocol 2 */
        CHECK(((unsigned char *)d)[225] == 0);
        free(d);
    }
    npe_zip_close(z);
}

static void test_python_zipfile(void)
{
    npe_zip_reader *z = open_ok(pyzip_zip, sizeof(pyzip_zip));
    if (!z)
        return;
    CHECK_EQ_INT(npe_zip_count(z), 2);
    const npe_zip_entry *t = npe_zip_find(z, "doc/readme.txt"), *r = npe_zip_find(z, "doc/raw.bin");
    CHECK(t && r);
    if (!t || !r) {
        npe_zip_close(z);
        return;
    }
    CHECK_EQ_INT(t->method, 8);
    CHECK_EQ_INT(t->size, 900);
    CHECK_EQ_INT(t->comp_size, 55);
    CHECK_EQ_INT(t->crc32, 0x56d00dc5);
    CHECK_EQ_INT(t->data_offset, 44);
    CHECK_EQ_INT(r->method, 0);
    CHECK_EQ_INT(r->size, 256);
    CHECK_EQ_INT(r->crc32, 0x29058c73);
    CHECK_EQ_INT(r->data_offset, 156);

    npe_error err = {0};
    void *d;
    size_t n;
    int rc = npe_zip_read(z, t, 4096, &d, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        const char *line = "The quick brown fox jumps over the lazy dog.\n";
        CHECK_EQ_INT(n, 900);
        for (size_t i = 0; i + 45 <= n; i += 45)
            CHECK(memcmp((char *)d + i, line, 45) == 0);
        CHECK(((char *)d)[900] == '\0');
        free(d);
    }
    const void *v;
    rc = npe_zip_view(z, t, &v, &err);
    EXPECT_ERR(rc, &err, NPE_EUNSUPPORTED, "doc/readme.txt", "deflate");
    CHECK(v == NULL);
    rc = npe_zip_view(z, r, &v, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc)
        for (int i = 0; i < 256; i++)
            CHECK(((const unsigned char *)v)[i] == i);
    /* Limit exactly at the size is allowed; one below is not. */
    rc = npe_zip_read(z, r, 256, &d, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc)
        free(d);
    rc = npe_zip_read(z, r, 255, &d, &n, &err);
    EXPECT_ERR(rc, &err, NPE_ELIMIT, "doc/raw.bin", "limit");
    CHECK(d == NULL);
    /* An entry of another reader is refused, not dereferenced blindly. */
    npe_zip_entry fake = *r;
    rc = npe_zip_view(z, &fake, &v, &err);
    EXPECT_ERR(rc, &err, NPE_EINVAL, "good.zip", NULL);
    npe_zip_close(z);
}

/* ---- Round trips ---- */

/* Check the local header of a stored record written by us, from the raw bytes. */
static void check_stored_local(const unsigned char *b, size_t n, const npe_zip_entry *e)
{
    CHECK(e->header_offset + 30 <= n);
    if (e->header_offset + 30 > n)
        return;
    const unsigned char *h = b + e->header_offset;
    size_t nl = get16(h + 26), el = get16(h + 28);
    CHECK_EQ_INT(get32(h), SIG_LOCAL);
    CHECK_EQ_INT(get16(h + 6) & 0x0008, 0); /* sizes known up front: no data descriptor */
    CHECK_EQ_INT(get16(h + 8), 0);
    CHECK_EQ_INT(get32(h + 14), e->crc32);
    CHECK_EQ_INT(e->header_offset + 30 + nl + el, e->data_offset);
    CHECK_EQ_INT(e->data_offset % 64, 0);
    /* The padding block "FB" ends the extra field and fills it up to the boundary. */
    CHECK(el >= 4);
    if (el >= 4) {
        const unsigned char *x = h + 30 + nl, *fb = x;
        if (get16(x) == 0x0001)
            fb = x + 4 + get16(x + 2);
        CHECK_EQ_INT(get16(fb), 0x4246);
        CHECK(fb + 4 + get16(fb + 2) == x + el);
        for (size_t i = 0; i < get16(fb + 2); i++)
            CHECK(fb[4 + i] == 'Z');
    }
}

static void check_end_records(const unsigned char *b, size_t n, uint64_t count)
{
    CHECK(n >= 98);
    if (n < 98)
        return;
    const unsigned char *eocd = b + n - 22, *loc = b + n - 42, *z64 = b + n - 98;
    CHECK_EQ_INT(get32(eocd), 0x06054b50);
    CHECK_EQ_INT(get32(loc), 0x07064b50);
    CHECK_EQ_INT(get64(loc + 8), n - 98);
    CHECK_EQ_INT(get32(loc + 16), 1);
    CHECK_EQ_INT(get32(z64), 0x06064b50);
    CHECK_EQ_INT(get64(z64 + 4), 44);
    CHECK_EQ_INT(get64(z64 + 24), count);
    CHECK_EQ_INT(get64(z64 + 32), count);
    uint64_t cd_size = get64(z64 + 40), cd_off = get64(z64 + 48);
    CHECK_EQ_INT(cd_off + cd_size, n - 98); /* directory right before the end records */
    CHECK_EQ_INT(get16(eocd + 10), count < 0xFFFF ? count : 0xFFFF);
    CHECK_EQ_INT(get32(eocd + 12), cd_size);
    CHECK_EQ_INT(get32(eocd + 16), cd_off);
}

static void test_roundtrip_stored(void)
{
    unsigned char pattern[1000];
    for (int i = 0; i < 1000; i++)
        pattern[i] = (unsigned char)(i * 31 + 7);
    const rec r[] = {
        {"abc", "123456789", 9, 0},
        {"abc/data/0", pattern, sizeof(pattern), 0},
        {"abc/empty", "", 0, 0},
        {"abc/version", "3\n", 2, 0},
    };
    char path[512];
    tmp_path(path, sizeof(path), "roundtrip.zip");
    if (write_zip(path, 0, r, 4))
        return;

    /* The first record by hand: "abc" at offset 0, 30 + 3 + 4 = 37, padded by 27 to 64. */
    npe_error err = {0};
    npe_zip_reader *z;
    int rc = npe_zip_open(path, &z, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    const unsigned char *b = npe_zip_base(z);
    size_t n = npe_zip_file_size(z);
    CHECK_EQ_INT(get16(b + 28), 31);
    CHECK_EQ_INT(get16(b + 33), 0x4246);
    CHECK_EQ_INT(get16(b + 35), 27);
    check_end_records(b, n, 4);

    CHECK_EQ_INT(npe_zip_count(z), 4);
    for (size_t i = 0; i < 4 && i < npe_zip_count(z); i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        CHECK_STR(e->name, r[i].name);
        CHECK_EQ_INT(e->size, r[i].size);
        CHECK_EQ_INT(e->comp_size, r[i].size);
        CHECK_EQ_INT(e->method, 0);
        check_stored_local(b, n, e);
        const void *v;
        rc = npe_zip_view(z, e, &v, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            CHECK(memcmp(v, r[i].data, r[i].size) == 0);
            CHECK((const unsigned char *)v == b + e->data_offset);
        }
        void *d;
        size_t dn;
        rc = npe_zip_read(z, e, 1 << 20, &d, &dn, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            CHECK_EQ_INT(dn, r[i].size);
            CHECK(memcmp(d, r[i].data, dn) == 0);
            CHECK(((char *)d)[dn] == '\0');
            free(d);
        }
    }
    /* Standard CRC-32 check values (ISO-HDLC): "123456789" -> 0xCBF43926, "" -> 0. */
    CHECK_EQ_INT(npe_zip_find(z, "abc")->crc32, 0xCBF43926u);
    CHECK_EQ_INT(npe_zip_find(z, "abc/empty")->crc32, 0);
    CHECK_EQ_INT(npe_zip_find(z, "abc/version")->crc32, 0x55679ed1u); /* as in torch113_pt */
    npe_zip_close(z);
    unlink(path);
}

static void test_roundtrip_deflate(void)
{
    size_t tn = 0;
    char *text = malloc(20000);
    for (int i = 0; tn < 19000; i++)
        tn += (size_t)sprintf(text + tn, "    x_%d = torch.relu(x_%d)\n", i, i % 7);
    unsigned char noise[5000];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        s = s * 1103515245u + 12345u;
        noise[i] = (unsigned char)(s >> 24);
    }
    const rec r[] = {
        {"m/code/__torch__.py", text, tn, 1},
        {"m/noise", noise, sizeof(noise), 1},
        {"m/empty.py", "", 0, 1},
        {"m/data/0", noise, 100, 0},
    };
    size_t n;
    unsigned char *b = build(0, r, 4, &n);
    npe_zip_reader *z = b ? open_ok(b, n) : NULL;
    if (!z) {
        free(b);
        free(text);
        return;
    }
    CHECK_EQ_INT(npe_zip_count(z), 4);
    npe_error err = {0};
    for (size_t i = 0; i < 4 && i < npe_zip_count(z); i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        CHECK_STR(e->name, r[i].name);
        CHECK_EQ_INT(e->method, r[i].deflate ? 8 : 0);
        CHECK_EQ_INT(e->size, r[i].size);
        CHECK_EQ_INT(e->crc32, crc32(0, r[i].data, (uInt)r[i].size));
        void *d;
        size_t dn;
        int rc = npe_zip_read(z, e, 1 << 20, &d, &dn, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            CHECK_EQ_INT(dn, r[i].size);
            CHECK(memcmp(d, r[i].data, dn) == 0);
            CHECK(((char *)d)[dn] == '\0');
            free(d);
        }
        if (r[i].deflate) {
            const void *v;
            rc = npe_zip_view(z, e, &v, &err);
            EXPECT_ERR(rc, &err, NPE_EUNSUPPORTED, r[i].name, NULL);
            /* Raw deflate that zlib itself inflates (no header, windowBits -15). */
            unsigned char *out = malloc(r[i].size + 1);
            z_stream zs;
            memset(&zs, 0, sizeof(zs));
            inflateInit2(&zs, -15);
            zs.next_in = (Bytef *)(b + e->data_offset);
            zs.avail_in = (uInt)e->comp_size;
            zs.next_out = out;
            zs.avail_out = (uInt)r[i].size + 1;
            CHECK_EQ_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
            CHECK_EQ_INT(zs.total_out, r[i].size);
            CHECK_EQ_INT(zs.total_in, e->comp_size);
            CHECK(memcmp(out, r[i].data, r[i].size) == 0);
            inflateEnd(&zs);
            free(out);
        }
    }
    const npe_zip_entry *code = npe_zip_find(z, "m/code/__torch__.py");
    CHECK(code && code->comp_size * 4 < code->size); /* repetitive text compresses well */
    check_stored_local(b, n, npe_zip_find(z, "m/data/0"));
    check_end_records(b, n, 4);
    npe_zip_close(z);
    free(b);
    free(text);
}

static void test_many_records(void)
{
    enum { N = 3000 };
    static unsigned char data[N];
    for (int i = 0; i < N; i++)
        data[i] = (unsigned char)(i * 13);
    rec *r = calloc(N, sizeof(*r));
    char(*names)[32] = calloc(N, 32);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 32, "many/data/%d", i);
        r[i] = (rec){names[i], data, (size_t)(i % 97), i % 10 == 9};
    }
    size_t n;
    unsigned char *b = build(0, r, N, &n);
    npe_zip_reader *z = b ? open_ok(b, n) : NULL;
    if (z) {
        CHECK_EQ_INT(npe_zip_count(z), N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            const npe_zip_entry *e = npe_zip_find(z, names[i]);
            if (!e || e != npe_zip_entry_at(z, (size_t)i) || e->size != (uint64_t)(i % 97) ||
                (!r[i].deflate && e->data_offset % 64 != 0)) {
                bad++;
                continue;
            }
            void *d;
            size_t dn;
            npe_error err = {0};
            if (npe_zip_read(z, e, 1000, &d, &dn, &err) != 0) {
                bad++;
                continue;
            }
            if (dn != (size_t)(i % 97) || memcmp(d, data, dn) != 0)
                bad++;
            free(d);
        }
        CHECK_EQ_INT(bad, 0);
        check_end_records(b, n, N);
        npe_zip_close(z);
    }
    free(b);
    free(names);
    free(r);
}

/* Names of every length from 1 to 140, with unaligned deflated records in between, so the
 * padding takes every value from 0 to 63. */
static void test_alignment(void)
{
    enum { N = 140 };
    rec r[2 * N];
    static char names[2 * N][160];
    unsigned char data[70];
    for (int i = 0; i < 70; i++)
        data[i] = (unsigned char)i;
    int pads_seen[64] = {0};
    for (int i = 0; i < N; i++) {
        memset(names[2 * i], 'a' + i % 26, (size_t)i + 1);
        names[2 * i][i + 1] = '\0';
        r[2 * i] = (rec){names[2 * i], data, (size_t)(i % 70), 0};
        snprintf(names[2 * i + 1], sizeof(names[0]), "z/%d.py", i);
        r[2 * i + 1] = (rec){names[2 * i + 1], data, (size_t)(i % 13), 1};
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        unsigned char *b = build(pass ? NPE_ZIP_FORCE_ZIP64 : 0, r, 2 * N, &n);
        npe_zip_reader *z = b ? open_ok(b, n) : NULL;
        if (!z) {
            free(b);
            continue;
        }
        CHECK_EQ_INT(npe_zip_count(z), 2 * N);
        int misaligned = 0;
        for (size_t i = 0; i < npe_zip_count(z); i++) {
            const npe_zip_entry *e = npe_zip_entry_at(z, i);
            CHECK_STR(e->name, r[i].name);
            if (e->method == 0) {
                check_stored_local(b, n, e);
                misaligned += e->data_offset % 64 != 0;
                const unsigned char *h = b + e->header_offset;
                const unsigned char *x = h + 30 + get16(h + 26);
                if (get16(x) == 0x0001)
                    x += 4 + get16(x + 2);
                if (get16(x + 2) < 64)
                    pads_seen[get16(x + 2)] = 1;
            } else {
                CHECK_EQ_INT(get16(b + e->header_offset + 28), pass ? 20 : 0); /* no padding */
            }
            const void *v;
            void *d;
            size_t dn;
            npe_error err = {0};
            if (e->method == 0) {
                int rc = npe_zip_view(z, e, &v, &err);
                CHECK_MSG(rc == 0 && memcmp(v, data, (size_t)e->size) == 0, "%s", err.msg);
            }
            int rc = npe_zip_read(z, e, 100, &d, &dn, &err);
            CHECK_MSG(rc == 0, "%s", err.msg);
            if (!rc) {
                CHECK(dn == r[i].size && memcmp(d, data, dn) == 0);
                free(d);
            }
        }
        CHECK_EQ_INT(misaligned, 0);
        npe_zip_close(z);
        free(b);
    }
    int distinct = 0;
    for (int i = 0; i < 64; i++)
        distinct += pads_seen[i];
    CHECK_MSG(distinct == 64, "only %d of the 64 padding sizes exercised", distinct);
}

static void test_forced_zip64(void)
{
    const rec r[] = {
        {"z/data.pkl", "\x80\x02}q\x00.", 6, 0},
        {"z/code.py", "def forward(self):\n    return 1\n", 32, 1},
        {"z/empty", "", 0, 0},
    };
    size_t n;
    unsigned char *b = build(NPE_ZIP_FORCE_ZIP64, r, 3, &n);
    npe_zip_reader *z = b ? open_ok(b, n) : NULL;
    if (!z) {
        free(b);
        return;
    }
    CHECK_EQ_INT(npe_zip_count(z), 3);
    for (size_t i = 0; i < 3 && i < npe_zip_count(z); i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        CHECK_STR(e->name, r[i].name);
        CHECK_EQ_INT(e->size, r[i].size);
        size_t nl = strlen(r[i].name);
        /* Local header: 0xFFFFFFFF sizes, version 45, ZIP64 field with both sizes. */
        const unsigned char *h = b + e->header_offset;
        CHECK_EQ_INT(get16(h + 4), 45);
        CHECK_EQ_INT(get32(h + 18), MAX32);
        CHECK_EQ_INT(get32(h + 22), MAX32);
        CHECK_EQ_INT(get16(h + 30 + nl), 0x0001);
        CHECK_EQ_INT(get16(h + 32 + nl), 16);
        CHECK_EQ_INT(get64(h + 34 + nl), r[i].size);
        CHECK_EQ_INT(get64(h + 42 + nl), e->comp_size);
        /* Central header: all three values moved to the ZIP64 field. */
        size_t c = find_header(b, n, SIG_CENTRAL, r[i].name);
        CHECK(c != SIZE_MAX);
        if (c == SIZE_MAX)
            continue;
        const unsigned char *ch = b + c;
        CHECK_EQ_INT(get16(ch + 6), 45);
        CHECK_EQ_INT(get32(ch + 20), MAX32);
        CHECK_EQ_INT(get32(ch + 24), MAX32);
        CHECK_EQ_INT(get32(ch + 42), MAX32);
        CHECK_EQ_INT(get16(ch + 30), 28);
        CHECK_EQ_INT(get16(ch + 46 + nl), 0x0001);
        CHECK_EQ_INT(get16(ch + 48 + nl), 24);
        CHECK_EQ_INT(get64(ch + 50 + nl), r[i].size);
        CHECK_EQ_INT(get64(ch + 58 + nl), e->comp_size);
        CHECK_EQ_INT(get64(ch + 66 + nl), e->header_offset);
        if (!r[i].deflate)
            check_stored_local(b, n, e);
        npe_error err = {0};
        void *d;
        size_t dn;
        int rc = npe_zip_read(z, e, 100, &d, &dn, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            CHECK(dn == r[i].size && memcmp(d, r[i].data, dn) == 0);
            free(d);
        }
    }
    check_end_records(b, n, 3);
    npe_zip_close(z);
    free(b);
}

static void test_empty_archive(void)
{
    size_t n;
    unsigned char *b = build(0, NULL, 0, &n);
    CHECK_EQ_INT(n, 98); /* ZIP64 end record + locator + classic end record, nothing else */
    npe_zip_reader *z = b ? open_ok(b, n) : NULL;
    if (z) {
        CHECK_EQ_INT(npe_zip_count(z), 0);
        CHECK(npe_zip_find(z, "x") == NULL);
        check_end_records(b, n, 0);
        npe_zip_close(z);
    }
    free(b);
}

/* ---- Corrupted archives ---- */

static const char small_text[] = "def forward(self, x):\n    return torch.relu(x)\n";

static unsigned char *small_archive(unsigned flags, size_t *n)
{
    const rec r[] = {
        {"s/data/0", "0123456789abcdef", 16, 0},
        {"s/code.py", small_text, sizeof(small_text) - 1, 1},
        {"s/empty", "", 0, 0},
    };
    return build(flags, r, 3, n);
}

static void test_truncated(void)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        unsigned char *b = small_archive(pass ? NPE_ZIP_FORCE_ZIP64 : 0, &n);
        if (!b)
            continue;
        npe_zip_reader *z = open_ok(b, n);
        npe_zip_close(z);
        int survived = 0;
        for (size_t len = 0; len < n; len++) {
            unsigned char *copy = malloc(len ? len : 1);
            memcpy(copy, b, len);
            npe_error err = {0};
            z = NULL;
            int rc = npe_zip_open_mem(copy, len, "cut.zip", &z, &err);
            if (rc == 0 || z != NULL || err.msg[0] == '\0' || !strstr(err.msg, "cut.zip")) {
                survived++;
                fprintf(stderr, "prefix of %zu bytes: rc %d: %s\n", len, rc, err.msg);
            }
            npe_zip_close(z);
            free(copy);
        }
        CHECK_EQ_INT(survived, 0);
        /* Cutting the end records off names the missing record. */
        EXPECT_OPEN_FAIL(b, n - 1, NPE_EFORMAT, "end of central directory", NULL);
        EXPECT_OPEN_FAIL(b, 21, NPE_EFORMAT, "not a zip archive", NULL);
        free(b);
    }
}

static void test_not_zip(void)
{
    const char *text = "this is a text file that someone renamed to model.pt, long enough to search";
    EXPECT_OPEN_FAIL((const unsigned char *)text, strlen(text), NPE_EFORMAT, "end of central directory", NULL);
    EXPECT_OPEN_FAIL(NULL, 0, NPE_EFORMAT, "not a zip archive", NULL);
    npe_zip_reader *z;
    npe_error err = {0};
    EXPECT_ERR(npe_zip_open_mem(NULL, 10, "x.zip", &z, &err), &err, NPE_EINVAL, "x.zip", NULL);
}

static void test_bad_crc(void)
{
    size_t n;
    unsigned char *b = small_archive(0, &n);
    if (!b)
        return;
    size_t loc = find_header(b, n, SIG_LOCAL, "s/data/0");
    size_t cen = find_header(b, n, SIG_CENTRAL, "s/data/0");
    size_t cen_code = find_header(b, n, SIG_CENTRAL, "s/code.py");
    CHECK(loc != SIZE_MAX && cen != SIZE_MAX && cen_code != SIZE_MAX);
    if (loc == SIZE_MAX || cen == SIZE_MAX || cen_code == SIZE_MAX) {
        free(b);
        return;
    }
    uint32_t good_crc = get32(b + cen + 16);
    CHECK_EQ_INT(good_crc, crc32(0, (const Bytef *)"0123456789abcdef", 16));

    /* A changed data byte: open is fine (CRCs are checked on access), view and read fail. */
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    /* The data follows the local header's name and extra field. */
    c[loc + 30 + get16(b + loc + 26) + get16(b + loc + 28) + 3] ^= 0x20;
    npe_zip_reader *z = open_ok(c, n);
    if (z) {
        const npe_zip_entry *e = npe_zip_find(z, "s/data/0");
        CHECK(c[e->data_offset + 3] == ('3' ^ 0x20));
        const void *v;
        void *d;
        size_t dn;
        npe_error err = {0};
        char want[64];
        snprintf(want, sizeof(want), "stored 0x%08x", (unsigned)good_crc);
        EXPECT_ERR(npe_zip_view(z, e, &v, &err), &err, NPE_EFORMAT, "good.zip: record 's/data/0': CRC-32 mismatch", want);
        CHECK(v == NULL);
        /* Still refused the second time: a failure is not cached as verified. */
        EXPECT_ERR(npe_zip_view(z, e, &v, &err), &err, NPE_EFORMAT, "s/data/0", "CRC-32 mismatch");
        EXPECT_ERR(npe_zip_read(z, e, 100, &d, &dn, &err), &err, NPE_EFORMAT, "s/data/0", "CRC-32 mismatch");
        CHECK(d == NULL);
        /* The untouched records still read. */
        int rc = npe_zip_read(z, npe_zip_find(z, "s/code.py"), 100, &d, &dn, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc)
            free(d);
        npe_zip_close(z);
    }
    /* The same corruption with CRC 0 in the directory ("not computed") is accepted. */
    put32(c + cen + 16, 0);
    z = open_ok(c, n);
    if (z) {
        const void *v;
        npe_error err = {0};
        int rc = npe_zip_view(z, npe_zip_find(z, "s/data/0"), &v, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        npe_zip_close(z);
    }
    /* A deflated record whose directory CRC is wrong. */
    memcpy(c, b, n);
    put32(c + cen_code + 16, get32(c + cen_code + 16) ^ 1);
    z = open_ok(c, n);
    if (z) {
        void *d;
        size_t dn;
        npe_error err = {0};
        EXPECT_ERR(npe_zip_read(z, npe_zip_find(z, "s/code.py"), 1000, &d, &dn, &err), &err, NPE_EFORMAT,
                   "record 's/code.py': CRC-32 mismatch", NULL);
        npe_zip_close(z);
    }
    free(c);
    free(b);
}

static void test_bad_offsets(void)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        unsigned char *b = small_archive(pass ? NPE_ZIP_FORCE_ZIP64 : 0, &n);
        if (!b)
            continue;
        unsigned char *c = malloc(n);
        size_t cen = find_header(b, n, SIG_CENTRAL, "s/code.py");
        size_t cen0 = find_header(b, n, SIG_CENTRAL, "s/data/0");
        size_t loc = find_header(b, n, SIG_LOCAL, "s/empty");
        CHECK(cen != SIZE_MAX && cen0 != SIZE_MAX && loc != SIZE_MAX);
        if (cen == SIZE_MAX || cen0 == SIZE_MAX || loc == SIZE_MAX) {
            free(c);
            free(b);
            continue;
        }
        /* Where the local header offset and the sizes are: the 32-bit fields, or the ZIP64
         * extra field (size, compressed size, offset) when forced. */
        size_t nl = strlen("s/code.py");
        size_t off_at = pass ? cen + 46 + nl + 4 + 16 : cen + 42;
        size_t comp_at = pass ? cen + 46 + nl + 4 + 8 : cen + 20;
#define PUT(at, v) (pass ? put64(c + (at), (v)) : put32(c + (at), (uint32_t)(v)))

        memcpy(c, b, n);
        PUT(off_at, n + 100);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "local header offset");
        memcpy(c, b, n);
        PUT(off_at, 1);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "no local header at offset 1");
        memcpy(c, b, n);
        PUT(comp_at, 0x7FFFFFF0u);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "runs past");
        if (pass) {
            /* 64-bit values that would wrap a 64-bit sum. */
            memcpy(c, b, n);
            PUT(comp_at, UINT64_MAX - 10);
            EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "runs past");
            memcpy(c, b, n);
            PUT(off_at, UINT64_MAX - 10);
            EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "local header offset");
        }
        /* A stored record whose two sizes disagree. */
        memcpy(c, b, n);
        if (pass)
            put64(c + cen0 + 46 + 8 + 4, 17);
        else
            put32(c + cen0 + 24, 17);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/data/0'", "stored");
        /* A local extra field that pushes the data past the directory. */
        memcpy(c, b, n);
        put16(c + loc + 28, 0xFFFF);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/empty'", "runs past");
        /* A record name that differs between local and central header. */
        memcpy(c, b, n);
        c[loc + 30 + 2] = 'E';
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/empty'", "'s/Empty'");
        /* The directory offset beyond the end records. */
        memcpy(c, b, n);
        put64(c + n - 98 + 48, n);
        put32(c + n - 22 + 16, (uint32_t)n);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "central directory", "runs past");
        memcpy(c, b, n);
        put64(c + n - 98 + 48, UINT64_MAX - 5);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "central directory", NULL);
        /* The directory offset moved by one: the first entry's signature is wrong. */
        memcpy(c, b, n);
        put64(c + n - 98 + 48, get64(c + n - 98 + 48) + 1);
        put64(c + n - 98 + 40, get64(c + n - 98 + 40) - 1);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "bad signature", NULL);
        /* The ZIP64 locator pointing outside the file or at something else. */
        memcpy(c, b, n);
        put64(c + n - 42 + 8, n * 2);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "ZIP64 end record offset", NULL);
        memcpy(c, b, n);
        put64(c + n - 42 + 8, 0);
        EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "no ZIP64 end of central directory record at offset 0", NULL);
        /* Several disks. */
        memcpy(c, b, n);
        put32(c + n - 42 + 16, 2);
        EXPECT_OPEN_FAIL(c, n, NPE_EUNSUPPORTED, "disks", NULL);
        /* A 0xFFFFFFFF marker without a ZIP64 field to resolve it. */
        if (!pass) {
            memcpy(c, b, n);
            put32(c + cen + 42, MAX32);
            EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "no ZIP64 extra field");
        } else {
            /* A ZIP64 field too short for the values it must hold. */
            memcpy(c, b, n);
            put16(c + cen + 46 + nl + 2, 8);
            EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "lacks the compressed size");
            /* An extra block whose length overruns the extra field. */
            memcpy(c, b, n);
            put16(c + cen + 46 + nl + 2, 200);
            EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "record 's/code.py'", "overruns");
        }
#undef PUT
        free(c);
        free(b);
    }
}

static void test_bad_count(void)
{
    /* Long names so the directory is big enough for one more fixed-size entry. */
    char names[3][80];
    for (int i = 0; i < 3; i++) {
        memset(names[i], 'n', 70);
        names[i][70] = '/';
        names[i][71] = (char)('0' + i);
        names[i][72] = '\0';
    }
    const rec r[] = {{names[0], "a", 1, 0}, {names[1], "b", 1, 0}, {names[2], "c", 1, 1}};
    size_t n;
    unsigned char *b = build(0, r, 3, &n);
    if (!b)
        return;
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    put64(c + n - 98 + 24, 1000);
    put64(c + n - 98 + 32, 1000);
    put16(c + n - 22 + 8, 1000);
    put16(c + n - 22 + 10, 1000);
    EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "claims 1000 records", NULL);
    /* Huge counts must not drive allocations. */
    memcpy(c, b, n);
    put64(c + n - 98 + 24, UINT64_MAX);
    put64(c + n - 98 + 32, UINT64_MAX);
    EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "claims 18446744073709551615 records", NULL);
    /* One more than there is: fits the size check, then runs out of directory. */
    memcpy(c, b, n);
    put64(c + n - 98 + 24, 4);
    put64(c + n - 98 + 32, 4);
    EXPECT_OPEN_FAIL(c, n, NPE_EFORMAT, "entry 3 of 4", "truncated");
    /* Counts that disagree between this disk and the total. */
    memcpy(c, b, n);
    put64(c + n - 98 + 24, 2);
    EXPECT_OPEN_FAIL(c, n, NPE_EUNSUPPORTED, "disk", NULL);
    /* Without ZIP64 end records the classic values are used (and checked). */
    size_t cd_off = get64(b + n - 98 + 48), cd_size = get64(b + n - 98 + 40);
    size_t m = cd_off + cd_size + 22;
    memcpy(c, b, cd_off + cd_size);
    memcpy(c + cd_off + cd_size, b + n - 22, 22);
    npe_zip_reader *z = open_ok(c, m);
    CHECK(z && npe_zip_count(z) == 3);
    npe_zip_close(z);
    put16(c + m - 22 + 8, 5);
    put16(c + m - 22 + 10, 5);
    EXPECT_OPEN_FAIL(c, m, NPE_EFORMAT, "entry 3 of 5", "truncated");
    put16(c + m - 22 + 8, 100);
    put16(c + m - 22 + 10, 100);
    EXPECT_OPEN_FAIL(c, m, NPE_EFORMAT, "claims 100 records", NULL);
    free(c);
    free(b);
}

static void test_zip_bomb(void)
{
    size_t big = 10u << 20;
    unsigned char *zeros = calloc(1, big);
    const rec r[] = {{"bomb/zeros", zeros, big, 1}, {"bomb/ok", "ok", 2, 0}};
    size_t n;
    unsigned char *b = build(0, r, 2, &n);
    free(zeros);
    if (!b)
        return;
    CHECK(n < 64 * 1024); /* ~10 MB of zeros deflates to ~10 KB */
    size_t cen = find_header(b, n, SIG_CENTRAL, "bomb/zeros");
    CHECK(cen != SIZE_MAX);
    if (cen == SIZE_MAX) {
        free(b);
        return;
    }
    npe_error err = {0};
    void *d = NULL;
    size_t dn;
    npe_zip_reader *z = open_ok(b, n);
    if (z) {
        const npe_zip_entry *e = npe_zip_find(z, "bomb/zeros");
        EXPECT_ERR(npe_zip_read(z, e, 1u << 20, &d, &dn, &err), &err, NPE_ELIMIT,
                   "record 'bomb/zeros' is 10485760 bytes", "limit of 1048576");
        CHECK(d == NULL);
        int rc = npe_zip_read(z, e, 16u << 20, &d, &dn, &err);
        CHECK_MSG(rc == 0 && dn == big, "%s", err.msg);
        free(d);
        npe_zip_close(z);
    }
    unsigned char *c = malloc(n);
    /* Declared smaller than what inflates: caught at the declared size, not after. */
    memcpy(c, b, n);
    put32(c + cen + 24, 1000);
    z = open_ok(c, n);
    if (z) {
        EXPECT_ERR(npe_zip_read(z, npe_zip_find(z, "bomb/zeros"), 1u << 20, &d, &dn, &err), &err, NPE_EFORMAT,
                   "record 'bomb/zeros'", "more than its declared size of 1000");
        npe_zip_close(z);
    }
    /* Declared larger than what inflates. */
    memcpy(c, b, n);
    put32(c + cen + 24, (uint32_t)big + 1);
    z = open_ok(c, n);
    if (z) {
        EXPECT_ERR(npe_zip_read(z, npe_zip_find(z, "bomb/zeros"), 16u << 20, &d, &dn, &err), &err, NPE_EFORMAT,
                   "record 'bomb/zeros'", "fewer than its declared size");
        npe_zip_close(z);
    }
    /* Compressed data cut short. */
    memcpy(c, b, n);
    put32(c + cen + 20, get32(c + cen + 20) / 2);
    z = open_ok(c, n);
    if (z) {
        EXPECT_ERR(npe_zip_read(z, npe_zip_find(z, "bomb/zeros"), 16u << 20, &d, &dn, &err), &err, NPE_EFORMAT,
                   "record 'bomb/zeros'", "ends before");
        npe_zip_close(z);
    }
    /* Garbage in the deflate stream. */
    memcpy(c, b, n);
    z = open_ok(c, n);
    if (z) {
        const npe_zip_entry *e = npe_zip_find(z, "bomb/zeros");
        memset(c + e->data_offset, 0xFF, 8); /* reserved block type 3 */
        EXPECT_ERR(npe_zip_read(z, e, 16u << 20, &d, &dn, &err), &err, NPE_EFORMAT,
                   "record 'bomb/zeros'", "corrupt deflate data");
        npe_zip_close(z);
    }
    free(c);
    free(b);
}

/* A record whose data runs over the next record's local header (how overlapping zip bombs
 * reuse one compressed stream many times). */
static void test_overlap(void)
{
    unsigned char data[200] = {0};
    const rec r[] = {{"o/a", data, sizeof(data), 0}, {"o/b", "0123456789", 10, 0}};
    size_t n;
    unsigned char *b = build(0, r, 2, &n);
    if (!b)
        return;
    size_t la = find_header(b, n, SIG_LOCAL, "o/a"), lb = find_header(b, n, SIG_LOCAL, "o/b");
    size_t ca = find_header(b, n, SIG_CENTRAL, "o/a");
    CHECK(la != SIZE_MAX && lb != SIZE_MAX && ca != SIZE_MAX);
    if (la != SIZE_MAX && lb != SIZE_MAX && ca != SIZE_MAX) {
        size_t data_a = la + 30 + get16(b + la + 26) + get16(b + la + 28);
        uint32_t grown = (uint32_t)(lb - data_a + 1);
        put32(b + ca + 16, 0); /* CRC "not computed", so only the layout is wrong */
        put32(b + ca + 20, grown);
        put32(b + ca + 24, grown);
        EXPECT_OPEN_FAIL(b, n, NPE_EFORMAT, "records 'o/a'", "'o/b' (from byte");
        /* Ending exactly where the next header starts is fine. */
        put32(b + ca + 20, grown - 1);
        put32(b + ca + 24, grown - 1);
        npe_zip_reader *z = open_ok(b, n);
        CHECK(z && npe_zip_count(z) == 2);
        npe_zip_close(z);
    }
    free(b);
}

/* Build an archive whose record 'name' is spelled exactly as bad[0..len) in both headers. */
static void check_bad_name(const char *bad, size_t len, const char *why)
{
    char placeholder[64];
    memset(placeholder, 'q', len);
    placeholder[len] = '\0';
    const rec r[] = {{"ok/first", "1", 1, 0}, {placeholder, "2", 1, 0}};
    size_t n;
    unsigned char *b = build(0, r, 2, &n);
    if (!b)
        return;
    size_t loc = find_header(b, n, SIG_LOCAL, placeholder), cen = find_header(b, n, SIG_CENTRAL, placeholder);
    CHECK(loc != SIZE_MAX && cen != SIZE_MAX);
    if (loc != SIZE_MAX && cen != SIZE_MAX) {
        memcpy(b + loc + 30, bad, len);
        memcpy(b + cen + 46, bad, len);
        EXPECT_OPEN_FAIL(b, n, NPE_EFORMAT, "refused name", why);
    }
    free(b);
}

static void test_bad_names(void)
{
    static const struct {
        const char *name;
        const char *why;
    } bad[] = {
        {"../evil", "'..' path component"},
        {"/abs", "absolute path"},
        {"a/../../b", "'..' path component"},
        {"a/..", "'..' path component"},
        {"a\\..\\b", "'..' path component"},
        {"..\\evil", "'..' path component"},
        {"\\abs", "absolute path"},
        {"C:/evil", "drive letter"},
        {"c:evil", "drive letter"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_bad_name(bad[i].name, strlen(bad[i].name), bad[i].why);
        /* The writer refuses the same names. */
        char path[512];
        tmp_path(path, sizeof(path), "names.zip");
        npe_zip_writer *w;
        npe_error err = {0};
        if (npe_zip_writer_open(path, 0, &w, &err) == 0) {
            EXPECT_ERR(npe_zip_writer_add(w, bad[i].name, "x", 1, 0, &err), &err, NPE_EINVAL, bad[i].name,
                       bad[i].why);
            npe_zip_writer_abort(w);
        }
    }
    check_bad_name("a\0b", 3, "NUL");
    {
        npe_zip_writer *w;
        npe_error err = {0};
        char path[512];
        tmp_path(path, sizeof(path), "names.zip");
        if (npe_zip_writer_open(path, 0, &w, &err) == 0) {
            EXPECT_ERR(npe_zip_writer_add(w, "", "x", 1, 0, &err), &err, NPE_EINVAL, "empty name", NULL);
            npe_zip_writer_abort(w);
        }
    }
    /* Names that only look suspicious are fine. */
    const rec ok[] = {{"a/..b", "1", 1, 0}, {"a/b..", "2", 1, 0}, {"...", "3", 1, 0},
                      {"a/.hidden", "4", 1, 0}, {"ab:c", "5", 1, 0}, {"d/caf\xc3\xa9", "6", 1, 0}};
    size_t n;
    unsigned char *b = build(0, ok, 6, &n);
    npe_zip_reader *z = b ? open_ok(b, n) : NULL;
    if (z) {
        CHECK_EQ_INT(npe_zip_count(z), 6);
        for (size_t i = 0; i < 6; i++)
            CHECK(npe_zip_find(z, ok[i].name) == npe_zip_entry_at(z, i));
        npe_zip_close(z);
    }
    free(b);
}

static void test_unsupported(void)
{
    size_t n;
    unsigned char *b = small_archive(0, &n);
    if (!b)
        return;
    size_t cen = find_header(b, n, SIG_CENTRAL, "s/code.py");
    CHECK(cen != SIZE_MAX);
    if (cen != SIZE_MAX) {
        unsigned char *c = malloc(n);
        memcpy(c, b, n);
        put16(c + cen + 10, 12); /* bzip2 */
        EXPECT_OPEN_FAIL(c, n, NPE_EUNSUPPORTED, "record 's/code.py'", "compression method 12");
        memcpy(c, b, n);
        put16(c + cen + 10, 14); /* LZMA */
        EXPECT_OPEN_FAIL(c, n, NPE_EUNSUPPORTED, "record 's/code.py'", "compression method 14");
        memcpy(c, b, n);
        put16(c + cen + 8, get16(c + cen + 8) | 1);
        EXPECT_OPEN_FAIL(c, n, NPE_EUNSUPPORTED, "record 's/code.py'", "encrypted");
        free(c);
    }
    free(b);
}

static void test_duplicates(void)
{
    const rec r[] = {{"d/x1", "1", 1, 0}, {"d/x2", "2", 1, 0}};
    size_t n;
    unsigned char *b = build(0, r, 2, &n);
    if (b) {
        size_t loc = find_header(b, n, SIG_LOCAL, "d/x2"), cen = find_header(b, n, SIG_CENTRAL, "d/x2");
        CHECK(loc != SIZE_MAX && cen != SIZE_MAX);
        if (loc != SIZE_MAX && cen != SIZE_MAX) {
            b[loc + 33] = '1';
            b[cen + 49] = '1';
            EXPECT_OPEN_FAIL(b, n, NPE_EFORMAT, "record 'd/x1' appears twice", "entries 0 and 1");
        }
        free(b);
    }
    /* The writer refuses a second record of the same name and stays usable. */
    char path[512];
    tmp_path(path, sizeof(path), "dup.zip");
    npe_zip_writer *w;
    npe_error err = {0};
    int rc = npe_zip_writer_open(path, 0, &w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(npe_zip_writer_add(w, "d/x", "1", 1, 0, &err), 0);
    EXPECT_ERR(npe_zip_writer_add(w, "d/x", "2", 1, 1, &err), &err, NPE_EINVAL, "'d/x'", "twice");
    CHECK_EQ_INT(npe_zip_writer_add(w, "d/y", "3", 1, 0, &err), 0);
    rc = npe_zip_writer_finish(w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    npe_zip_reader *z;
    rc = npe_zip_open(path, &z, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(npe_zip_count(z), 2);
        const void *v;
        rc = npe_zip_view(z, npe_zip_find(z, "d/x"), &v, &err);
        CHECK(rc == 0 && *(const char *)v == '1');
        npe_zip_close(z);
    }
    unlink(path);
}

/* ---- Files on disk ---- */

/* Entries of tmpdir whose name starts with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void test_files(void)
{
    char path[512], keep[512];
    npe_error err = {0};
    npe_zip_reader *z = (npe_zip_reader *)&err;
    tmp_path(path, sizeof(path), "missing.zip");
    EXPECT_ERR(npe_zip_open(path, &z, &err), &err, NPE_EIO, "missing.zip", NULL);
    CHECK(z == NULL);
    EXPECT_ERR(npe_zip_open(tmpdir, &z, &err), &err, NPE_EIO, tmpdir, NULL);

    /* Aborted writer: nothing at the target, no temporary left. */
    tmp_path(path, sizeof(path), "new.zip");
    npe_zip_writer *w;
    int rc = npe_zip_writer_open(path, 0, &w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(npe_zip_writer_add(w, "n/data", "abc", 3, 0, &err), 0);
        CHECK_EQ_INT(count_files("new.zip"), 1); /* the temporary file */
        npe_zip_writer_abort(w);
    }
    struct stat st;
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
    CHECK_EQ_INT(count_files("new.zip"), 0);
    npe_zip_writer_abort(NULL);

    /* Aborted writer over an existing file: the file is untouched. */
    tmp_path(keep, sizeof(keep), "keep.zip");
    FILE *f = fopen(keep, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("original contents", f);
        fclose(f);
    }
    rc = npe_zip_writer_open(keep, 0, &w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(npe_zip_writer_add(w, "k/data", "new", 3, 1, &err), 0);
        npe_zip_writer_abort(w);
    }
    char *text;
    size_t tn;
    rc = npe_read_file(keep, 1024, &text, &tn, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_STR(text, "original contents");
        free(text);
    }
    CHECK_EQ_INT(count_files("keep.zip"), 1);

    /* A finished writer replaces it. */
    const rec r[] = {{"k/data", "new", 3, 0}};
    if (write_zip(keep, 0, r, 1) == 0) {
        rc = npe_zip_open(keep, &z, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            CHECK_EQ_INT(npe_zip_count(z), 1);
            CHECK_STR(npe_zip_entry_at(z, 0)->name, "k/data");
            npe_zip_close(z);
        }
    }
    CHECK_EQ_INT(count_files("keep.zip"), 1);
    unlink(keep);

    /* A writer into a folder that does not exist fails at once. */
    tmp_path(path, sizeof(path), "no/such/dir/x.zip");
    w = (npe_zip_writer *)&err;
    EXPECT_ERR(npe_zip_writer_open(path, 0, &w, &err), &err, NPE_EIO, "x.zip", NULL);
    CHECK(w == NULL);
}

/* Reading past 4 GiB, on a sparse file built by hand: a 4 GiB + 64 byte record of zeros (CRC 0,
 * "not computed") needs ZIP64 sizes, and the record after it a ZIP64 offset. */
static void test_over_4gib(void)
{
    if (sizeof(size_t) < 8) {
        printf("test_over_4gib: skipped (32-bit size_t)\n");
        return;
    }
    char path[512];
    tmp_path(path, sizeof(path), "sparse.zip");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const uint64_t big = (1ull << 32) + 64;
    const char *n0 = "big/data/0", *n1 = "big/tail";
    unsigned char h0[30 + 10 + 20] = {0}, h1[30 + 8 + 5] = {0}, cd[46 + 10 + 20 + 46 + 8 + 12] = {0},
                  end[56 + 20 + 22] = {0};
    put32(h0, SIG_LOCAL);
    put16(h0 + 4, 45);
    put32(h0 + 18, MAX32);
    put32(h0 + 22, MAX32);
    put16(h0 + 26, 10);
    put16(h0 + 28, 20);
    memcpy(h0 + 30, n0, 10);
    put16(h0 + 40, 1);
    put16(h0 + 42, 16);
    put64(h0 + 44, big);
    put64(h0 + 52, big);
    const uint64_t off1 = sizeof(h0) + big;
    put32(h1, SIG_LOCAL);
    put16(h1 + 4, 10);
    put32(h1 + 14, 0x3610a686u); /* CRC-32 of "hello" */
    put32(h1 + 18, 5);
    put32(h1 + 22, 5);
    put16(h1 + 26, 8);
    memcpy(h1 + 30, n1, 8);
    memcpy(h1 + 38, "hello", 5);
    const uint64_t cd_off = off1 + sizeof(h1);
    unsigned char *c = cd;
    put32(c, SIG_CENTRAL);
    put16(c + 4, 45);
    put16(c + 6, 45);
    put32(c + 20, MAX32);
    put32(c + 24, MAX32);
    put16(c + 28, 10);
    put16(c + 30, 20);
    memcpy(c + 46, n0, 10);
    put16(c + 56, 1);
    put16(c + 58, 16);
    put64(c + 60, big);
    put64(c + 68, big);
    c += 46 + 10 + 20;
    put32(c, SIG_CENTRAL);
    put16(c + 4, 45);
    put16(c + 6, 45);
    put32(c + 16, 0x3610a686u);
    put32(c + 20, 5);
    put32(c + 24, 5);
    put16(c + 28, 8);
    put16(c + 30, 12);
    put32(c + 42, MAX32);
    memcpy(c + 46, n1, 8);
    put16(c + 54, 1);
    put16(c + 56, 8);
    put64(c + 58, off1);
    const uint64_t z64_off = cd_off + sizeof(cd);
    put32(end, 0x06064b50);
    put64(end + 4, 44);
    put16(end + 12, 45);
    put16(end + 14, 45);
    put64(end + 24, 2);
    put64(end + 32, 2);
    put64(end + 40, sizeof(cd));
    put64(end + 48, cd_off);
    put32(end + 56, 0x07064b50);
    put64(end + 64, z64_off);
    put32(end + 72, 1);
    put32(end + 76, 0x06054b50);
    put16(end + 84, 2);
    put16(end + 86, 2);
    put32(end + 88, sizeof(cd));
    put32(end + 92, MAX32);
    const uint64_t total = z64_off + sizeof(end);
    int ok = ftruncate(fd, (off_t)total) == 0 && pwrite(fd, h0, sizeof(h0), 0) == (ssize_t)sizeof(h0) &&
             pwrite(fd, h1, sizeof(h1), (off_t)off1) == (ssize_t)sizeof(h1) &&
             pwrite(fd, cd, sizeof(cd), (off_t)cd_off) == (ssize_t)sizeof(cd) &&
             pwrite(fd, end, sizeof(end), (off_t)z64_off) == (ssize_t)sizeof(end);
    close(fd);
    if (!ok) {
        printf("test_over_4gib: skipped (cannot make a sparse 4 GiB file here: %s)\n", strerror(errno));
        unlink(path);
        return;
    }
    npe_zip_reader *z;
    npe_error err = {0};
    int rc = npe_zip_open(path, &z, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(npe_zip_file_size(z), total);
        CHECK_EQ_INT(npe_zip_count(z), 2);
        const npe_zip_entry *e0 = npe_zip_find(z, n0), *e1 = npe_zip_find(z, n1);
        CHECK(e0 && e1);
        if (e0 && e1) {
            CHECK_EQ_INT(e0->size, big);
            CHECK_EQ_INT(e0->comp_size, big);
            CHECK_EQ_INT(e0->data_offset, 60);
            CHECK_EQ_INT(e1->header_offset, off1);
            CHECK_EQ_INT(e1->data_offset, off1 + 38);
            const void *v;
            rc = npe_zip_view(z, e1, &v, &err);
            CHECK_MSG(rc == 0 && memcmp(v, "hello", 5) == 0, "%s", err.msg);
            rc = npe_zip_view(z, e0, &v, &err); /* CRC 0: not computed, so instant */
            CHECK_MSG(rc == 0 && ((const unsigned char *)v)[big - 1] == 0, "%s", err.msg);
            void *d;
            size_t dn;
            EXPECT_ERR(npe_zip_read(z, e0, 1u << 20, &d, &dn, &err), &err, NPE_ELIMIT, "big/data/0",
                       "4294967360 bytes");
        }
        npe_zip_close(z);
    }
    unlink(path);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/npe_test_zip.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot create a temporary folder %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    test_torch113();
    test_python_zipfile();
    test_roundtrip_stored();
    test_roundtrip_deflate();
    test_many_records();
    test_alignment();
    test_forced_zip64();
    test_empty_archive();
    test_truncated();
    test_not_zip();
    test_bad_crc();
    test_bad_offsets();
    test_bad_count();
    test_zip_bomb();
    test_overlap();
    test_bad_names();
    test_unsupported();
    test_duplicates();
    test_files();
    test_over_4gib();
    CHECK_EQ_INT(count_files(""), 2); /* "." and "..": every test cleaned up */
    rmdir(tmpdir);
    return tu_finish("test_zip");
}
