
0.65.0chttps://qaihub-public-assets.s3.us-west-2.amazonaws.com/qai-hub-models/releases/v0.65.0/platform.pbù
mobilenet_v2MobileNet-v2""}https://qaihub-public-assets.s3.us-west-2.amazonaws.com/qai-hub-models/models/mobilenet_v2/releases/v0.65.0/release_assets.pbÆ
qwen2_7b_instructQwen2-7B-Instruct"Ö"Çhttps://qaihub-public-assets.s3.us-west-2.amazonaws.com/qai-hub-models/models/qwen2_7b_instruct/releases/v0.65.0/release_assets.pb´
llama_v2_7b_chatLlama-v2-7B-Chat"Ñ"Åhttps://qaihub-public-assets.s3.us-west-2.amazonaws.com/qai-hub-models/models/llama_v2_7b_chat/releases/v0.65.0/release_assets.pb