/*
 * A device-side test program for a model exported with Export-QuantModel -Format C -Name model:
 *   gcc -std=c99 -Wall -Wextra -Werror -O2 -ffp-contract=off [-DQT_DUMP=dumps] -o net main.c model.c model_weights.c qt_kernels.c
 *   ./net input.npy output.npy
 * reads a float32 .npy input of MODEL_INPUT_COUNT values (C order), runs model_run and writes the float32 output
 * as .npy. With -DQT_DUMP=dumps every layer's output is written to dumps/<layer>.npy as well (the folder must exist).
 */
#include <stdio.h>
#include <string.h>
#include "model.h"

static float input[MODEL_INPUT_COUNT], output[MODEL_OUTPUT_COUNT];
static float scratch[MODEL_SCRATCH_SIZE / sizeof(float) + 1]; /* float-aligned scratch memory */

static int read_npy(const char *path, float *data, size_t count)
{
    unsigned char pre[10];
    size_t header;
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) { fclose(f); return 2; }
    header = (size_t)pre[8] | ((size_t)pre[9] << 8);
    if (fseek(f, (long)header, SEEK_CUR) != 0 || fread(data, sizeof(float), count, f) != count) { fclose(f); return 3; }
    fclose(f);
    return 0;
}

static int write_npy(const char *path, const float *data, size_t count, const int *shape, int rank)
{
    char header[256];
    int len = sprintf(header, "{'descr': '<f4', 'fortran_order': False, 'shape': ("), d;
    FILE *f;
    for (d = 0; d < rank; d++) len += sprintf(header + len, rank == 1 ? "%d," : d + 1 < rank ? "%d, " : "%d", shape[d]);
    len += sprintf(header + len, "), }");
    f = fopen(path, "wb");
    if (!f) return 1;
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(len & 0xFF, f);
    fputc(len >> 8, f);
    fwrite(header, 1, (size_t)len, f);
    fwrite(data, sizeof(float), count, f);
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    static const int shape[MODEL_OUTPUT_RANK] = MODEL_OUTPUT_SHAPE;
    int rc;
    if (argc != 3) { fprintf(stderr, "usage: %s input.npy output.npy\n", argv[0]); return 64; }
    if (read_npy(argv[1], input, MODEL_INPUT_COUNT)) { fprintf(stderr, "cannot read %d float32 values from %s\n", MODEL_INPUT_COUNT, argv[1]); return 65; }
    rc = model_run(input, output, scratch);
    if (rc != 0) { fprintf(stderr, "model_run returned %d\n", rc); return rc; }
    if (write_npy(argv[2], output, MODEL_OUTPUT_COUNT, shape, MODEL_OUTPUT_RANK)) { fprintf(stderr, "cannot write %s\n", argv[2]); return 66; }
    printf("%d outputs written to %s (%d layers, %lu bytes of scratch)\n", MODEL_OUTPUT_COUNT, argv[2], MODEL_LAYER_COUNT, (unsigned long)model_scratch_size());
    return 0;
}
