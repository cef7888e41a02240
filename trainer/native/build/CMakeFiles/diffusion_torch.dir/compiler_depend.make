# Empty compiler generated dependencies file for diffusion_torch.
# This may be replaced when dependencies are built.
