#!/bin/bash
# slfer-dist under Open MPI's mpirun (or MPICH's mpiexec): one rank per process; rank 0 on the first
# host hosts the coordinator. mpirun gives no coordinator address, so this passes the first host.
#
#   SLFER_HOSTS=node1:4,node2:4 cluster/templates/mpi/mpirun.sh --config configs/default.json --out runs/mpi --auth-key run.key
#
# Settings: SLFER_HOSTS (host:slots,...; required), SLFER_NP (processes; default: the slots' sum),
# SLFER_MASTER_PORT (default 29500), SLFER_BIN (the slfer-dist command, split at spaces:
# SLFER_BIN="node /opt/slfer-dist/bin/slfer-dist.js"; default slfer-dist), MPIRUN (default mpirun;
# Open MPI's, MPICH's Hydra or Intel MPI's), MPIRUN_ARGS (more launcher flags, split at spaces,
# e.g. "--mca btl_tcp_if_include eth0" or "-iface eth0"), OMP_NUM_THREADS (per rank; default 1).
set -u
: "${SLFER_HOSTS:?set SLFER_HOSTS to host:slots,host:slots}"
NP=${SLFER_NP:-$(echo "$SLFER_HOSTS" | tr ',' '\n' | awk -F: '{ n += ($2 == "" ? 1 : $2) } END { print n }')}
MASTER=${SLFER_HOSTS%%[:,]*}
PORT=${SLFER_MASTER_PORT:-29500}
MPIRUN=${MPIRUN:-mpirun}
# Words, as a shell splits them (no globbing): a command with its script, flags with their values.
read -r -a SLFER <<< "${SLFER_BIN:-slfer-dist}"
read -r -a EXTRA <<< "${MPIRUN_ARGS:-}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Open MPI hands a rank only the variables named by -x; Hydra (MPICH, Intel MPI) hands it the whole
# environment, and -genv sets one for every rank. Both take --host host:slots,... and -np.
if "$MPIRUN" --version 2>&1 | grep -qiE 'open ?mpi|openrte'; then
  ENVFLAGS=(-x OMP_NUM_THREADS)
else
  ENVFLAGS=(-genv OMP_NUM_THREADS "$OMP_NUM_THREADS")
fi
# Open MPI aborts the job when a rank exits non-zero; MPICH's Hydra waits for the others, which is
# why every slfer-dist rank stops by itself within seconds of losing a peer.
exec "$MPIRUN" -np "$NP" --host "$SLFER_HOSTS" "${ENVFLAGS[@]}" "${EXTRA[@]}" \
  "${SLFER[@]}" launch --rdzv-endpoint "$MASTER:$PORT" "$@"
