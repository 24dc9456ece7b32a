 *Genie*TensorFlow Lite*\
qualcomm-snapdragon-8-elitesnapdragon 8 elitesm8750Snapdragon® 8 Elite Mobile0O8EH*\
qualcomm-snapdragon-8-gen-3snapdragon 8 gen 3sm8650Snapdragon® 8 Gen 3 Mobile0K89H*\
qualcomm-snapdragon-8-gen-2snapdragon 8 gen 2sm8550Snapdragon® 8 Gen 2 Mobile0I8+H