"""Result grids (seeds x tasks x methods x any config key) on Hydra's multirun: ``python -m lightning_mbmarl sweep
--config-name <sweep>`` expands a sweep file of ``conf/sweeps/`` and launches each grid point as one ordinary
``fit --config ...`` run; ``python -m lightning_mbmarl report <sweep>`` prints its table and plots its curves."""
