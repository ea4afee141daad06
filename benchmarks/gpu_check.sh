#!/usr/bin/env bash
# GPU check of the template, about 3 minutes on one GPU: bake with the CUDA smoke run, train with
# bf16 and fp16, test.py, torchrun over every GPU, and the trainer-vs-raw-loop ratio on CUDA.
#
#   bash benchmarks/gpu_check.sh            # needs a CUDA torch (requirements-dev.txt on a GPU box)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
python -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda); sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== bake (post-gen smoke run on CUDA)"
time python -m cookiecutter --no-input -o "$work" .
cd "$work/my_project"
for amp in bf16 fp16; do
  echo "== train, amp=$amp"
  python train.py -c config.json --set trainer.amp=$amp --set trainer.epochs=5 --set trainer.save_dir="$work/saved_$amp" | tail -n 3
  python test.py -r "$(ls "$work"/saved_$amp/Digits/*/model_best.pth)" | tail -n 3
done
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
echo "== torchrun on $gpus GPU(s), with a resume"
python -m torch.distributed.run --standalone --nproc_per_node="$gpus" train.py -c config.json --set trainer.epochs=3 --set trainer.save_period=1 --set trainer.save_dir="$work/ddp" | tail -n 2
python -m torch.distributed.run --standalone --nproc_per_node="$gpus" train.py -c config.json -r auto --set trainer.epochs=4 --set trainer.save_dir="$work/ddp" | tail -n 2
cd - >/dev/null
echo "== trainer vs hand-written loop on CUDA"
python benchmarks/overhead.py --only trainer --device cuda --repeats 5
