
0.65.0 *Genieqnn *QNN Context Binary*TensorFlow Lite"<
Samsung Galaxy S25&qualcomm-snapdragon-8-elite-for-galaxy"%
Dragonwing Q-8750qualcomm-qcs8750"/
Samsung Galaxy S24qualcomm-snapdragon-8gen3"/
Samsung Galaxy S23qualcomm-snapdragon-8gen2*�
&qualcomm-snapdragon-8-elite-for-galaxy	sm8750-acsnapdragon 8 elite for galaxy&Snapdragon® 8 Elite for Galaxy Mobile0O8EBSamsung Galaxy S25H*J
qualcomm-qcs8750qcs8750Dragonwing™ Q-87500O8EBDragonwing Q-8750H*n
qualcomm-snapdragon-8gen3sm8650snapdragon 8 gen 3Snapdragon® 8 Gen 3 Mobile0K89BSamsung Galaxy S24H*n
qualcomm-snapdragon-8gen2sm8550snapdragon 8 gen 2Snapdragon® 8 Gen 2 Mobile0I8+BSamsung Galaxy S23H*[
qualcomm-snapdragon-x-elitesc8380xpSnapdragon® X Elite0I8<BSnapdragon X Elite CRDH