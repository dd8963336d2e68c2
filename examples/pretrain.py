"""Pretrain a Dual Denoising model (or the ULIP baseline) on point/image/text triples with Accelerate.

    # one process (CPU or one GPU)
    python examples/pretrain.py --dataset data/synthshapes --teacher teacher/ --preset tiny --output_dir runs/tiny
    # any accelerate setup (examples/accelerate_configs/*.yaml)
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/pretrain.py ...
    # two CPU processes (gloo)
    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 examples/pretrain.py ...

Every option is listed by `--help`; the work is done by `dual_denoising.training.pretrain`.
"""

import logging

from dual_denoising.training import parse_args, pretrain


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, prog="pretrain.py")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    pretrain(args)


if __name__ == "__main__":
    main()
