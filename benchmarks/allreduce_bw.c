/* The baseline of benchmarks/allreduce_bw.js: a plain C MPI_Allreduce loop (float32,
 * sum, in place), timed exactly as the JS side times ts.distributed.allReduce:
 * barrier, then `iters` back-to-back calls, the slowest rank's time.
 *   mpicc -O2 allreduce_bw.c -o allreduce_bw && mpirun -np 2 ./allreduce_bw BYTES:ITERS ...
 * Prints one JSON line per size on rank 0: {"bytes":B,"iters":I,"seconds":S} (S per call). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (int a = 1; a < argc; a++) {
    long long bytes = 0;
    int iters = 0;
    if (sscanf(argv[a], "%lld:%d", &bytes, &iters) != 2 || bytes <= 0 || iters <= 0) {
      if (rank == 0) fprintf(stderr, "allreduce_bw: expected BYTES:ITERS, got '%s'\n", argv[a]);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int count = (int)(bytes / 4);
    float* buf = (float*)calloc((size_t)count, sizeof(float));
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 3);
    MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0, slowest = 0;
    MPI_Reduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("{\"bytes\":%lld,\"iters\":%d,\"seconds\":%.9g}\n", bytes, iters, slowest / iters);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
