
0.65.0mobilenet_v2ê"âhttps://qaihub-public-assets.s3.us-west-2.amazonaws.com/qai-hub-models/models/mobilenet_v2/releases/v0.65.0/mobilenet_v2-tflite-float.zip