"""Operations around runs: environment checks (doctor), launchers (local workers, Slurm) and fault points."""
