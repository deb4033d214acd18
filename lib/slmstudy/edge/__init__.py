"""The edge engine: llama.cpp (through the xllamacpp binding) on the host's CPU
cores, running the GGUF files of ``slmstudy.gguf_files`` one process per
configuration, as the vLLM engine does for safetensors folders."""
