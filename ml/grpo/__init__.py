"""Online RL for the generator (step 7 of the method): Flow-GRPO with SpatialScore rewards and the paper's top-k
filtering, LoRA on a diffusers flow-matching transformer (Flux, SD3). Never imports Django.

- config.py: GRPOConfig (the settings with help texts and the paper's defaults; pure Python)
- sde.py: the SDE step of the flow and its exact Gaussian log-probability, the KL between two steps
- objective.py: group advantages with top-k filtering, the clipped loss
- policy.py: FlowPolicy (the pipeline's parts, LoRA, the reference with the adapter off), `sample`
- rewards.py: reward functions by name (spatialscore, brightness-left-right, ...)
- train.py: `train(config, on_metrics=...)`, checkpoints, resume, DDP; `python -m ml.grpo.train`

Importing the package itself loads nothing heavy; import the modules."""
