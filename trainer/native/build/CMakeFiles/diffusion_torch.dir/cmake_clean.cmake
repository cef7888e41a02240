file(REMOVE_RECURSE
  "CMakeFiles/diffusion_torch.dir/shim.cpp.o"
  "CMakeFiles/diffusion_torch.dir/shim.cpp.o.d"
  "libdiffusion_torch.pdb"
  "libdiffusion_torch.so"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/diffusion_torch.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
