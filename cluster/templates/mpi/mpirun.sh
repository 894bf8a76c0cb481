#!/bin/bash
# slfer-dist under Open MPI's mpirun (or MPICH's mpiexec): one rank per process; rank 0 on the first
# host hosts the coordinator. mpirun gives no coordinator address, so this passes the first host.
#
#   SLFER_HOSTS=node1:4,node2:4 cluster/templates/mpi/mpirun.sh --config configs/default.json --out runs/mpi --auth-key run.key
#
# Settings: SLFER_HOSTS (host:slots,...; required), SLFER_NP (processes; default: the slots' sum),
# SLFER_MASTER_PORT (default 29500), SLFER_BIN (default slfer-dist), MPIRUN (default mpirun),
# MPIRUN_ARGS (more launcher flags, e.g. --mca btl_tcp_if_include eth0).
set -u
: "${SLFER_HOSTS:?set SLFER_HOSTS to host:slots,host:slots}"
NP=${SLFER_NP:-$(echo "$SLFER_HOSTS" | tr ',' '\n' | awk -F: '{ n += ($2 == "" ? 1 : $2) } END { print n }')}
MASTER=${SLFER_HOSTS%%[:,]*}
PORT=${SLFER_MASTER_PORT:-29500}
# Open MPI aborts the job when a rank exits non-zero; MPICH's Hydra waits for the others, which is
# why every slfer-dist rank stops by itself within seconds of losing a peer.
# shellcheck disable=SC2086
exec ${MPIRUN:-mpirun} -np "$NP" --host "$SLFER_HOSTS" -x OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ${MPIRUN_ARGS:-} \
  ${SLFER_BIN:-slfer-dist} launch --rdzv-endpoint "$MASTER:$PORT" "$@"
