
0.65.0llama_v2_7b_chat