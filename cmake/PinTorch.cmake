# Keeps find_package(Torch) inside the torch of Torch_DIR. TorchConfig looks for Caffe2 and
# libtorch.so/libc10.so in the system paths before its own folder, so a system LibTorch
# (Debian's libtorch-dev in /usr/lib) would silently replace the pip one.
macro(sparseplan_pin_torch)
  if(Torch_DIR)
    get_filename_component(sparseplan_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
    set(Caffe2_DIR "${sparseplan_torch_root}/share/cmake/Caffe2" CACHE PATH "" FORCE)
    foreach(lib torch c10 torch_cpu torch_cuda c10_cuda kineto)
      string(TOUPPER "${lib}" upper)
      foreach(var ${lib}_LIBRARY ${upper}_LIBRARY)
        unset(${var} CACHE)
        find_library(${var} ${lib} PATHS "${sparseplan_torch_root}/lib" NO_DEFAULT_PATH)
      endforeach()
    endforeach()
  endif()
  # torch's configuration (a CUDA build) needs the CUDA toolkit, also when no kernel is built.
  if(NOT CUDA_TOOLKIT_ROOT_DIR AND NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDA_TOOLKIT_ROOT_DIR /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
endmacro()
