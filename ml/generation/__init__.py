"""Generator backends: turn prompts into images for pair generation.

`settings` and `base` are pure Python (the web process validates generator settings with them); the diffusers
backend imports torch only when it is loaded, inside a worker."""
