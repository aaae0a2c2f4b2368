import joblib
import json
import numpy as np

from azureml.core.model import Model

def init():
    global model_1, model_2
    # Here "my_first_model" is the name of the model registered under the workspace.
    # This call will return the path to the .pkl file on the local disk.
    model_1_path = Model.get_model_path(model_name='my_first_model')
    model_2_path = Model.get_model_path(model_name='my_second_model')
    
    # Deserialize the model files back into scikit-learn models.
    model_1 = joblib.load(model_1_path)
    model_2 = joblib.load(model_2_path)

# Note you can pass in multiple rows for scoring.
def run(raw_data):
    try:
        data = json.loads(raw_data)['data']
        data = np.array(data)
        
        # Call predict() on each model
        result_1 = model_1.predict(data)
        result_2 = model_2.predict(data)

        # You can return any JSON-serializable value.
        return {"prediction1": result_1.tolist(), "prediction2": result_2.tolist()}
    except Exception as e:
        result = str(e)
        return result
