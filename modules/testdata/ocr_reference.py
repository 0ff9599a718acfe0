"""Python reference for the ocr module: PP-OCRv4 det + DB (OpenCV contours,
pyclipper unclip) + perspective crop + rec with CTC, on one image.
Usage: python3 ocr_reference.py IMAGE [UNCLIP_RATIO]
(pip install onnxruntime numpy opencv-python-headless pyclipper; models from
scripts/fetch-ocr-models.sh). The rendered test image is written by
FENNEC_OCR_DUMP=/tmp/lines.png go test ./modules -run TestOCRRenderedLines.
The direction classifier is skipped (all test lines are upright)."""
import numpy as np, cv2, onnxruntime as ort, sys, os
M=os.path.expanduser('~/.cache/fennec/models/')
det=ort.InferenceSession(M+'ch_PP-OCRv4_det_infer.onnx'); rec=ort.InferenceSession(M+'ch_PP-OCRv4_rec_infer.onnx')
keys=open(M+'ppocr_keys_v1.txt',encoding='utf8').read().rstrip('\n').split('\n'); chars=['']+keys+[' ']
img=cv2.imread(sys.argv[1])
H,W=img.shape[:2]
# det: limit side 960 as in paddle default
r=min(1.0,960/max(H,W)); rh=max(32,int(round(H*r/32))*32); rw=max(32,int(round(W*r/32))*32)
x=cv2.resize(img,(rw,rh)).astype(np.float32)[:,:,::-1]/255.
x=(x-np.array([0.485,0.456,0.406]))/np.array([0.229,0.224,0.225])
p=det.run(None,{det.get_inputs()[0].name:x.transpose(2,0,1)[None].astype(np.float32)})[0][0,0]
bm=(p>0.3).astype(np.uint8)
cs,_=cv2.findContours(bm,cv2.RETR_LIST,cv2.CHAIN_APPROX_SIMPLE)
import pyclipper
ratio=float(sys.argv[2]) if len(sys.argv)>2 else 1.5
boxes=[]
for c in cs:
    rect=cv2.minAreaRect(c)
    if min(rect[1])<3: continue
    pts=cv2.boxPoints(rect)
    poly=pts; area=cv2.contourArea(poly); length=cv2.arcLength(poly,True); d=area*ratio/length
    o=pyclipper.PyclipperOffset(); o.AddPath(poly.astype(int).tolist(),pyclipper.JT_ROUND,pyclipper.ET_CLOSEDPOLYGON)
    e=np.array(o.Execute(d)[0]); rect=cv2.minAreaRect(e); b=cv2.boxPoints(rect)
    b=sorted(b.tolist(),key=lambda q:q[0]); l=b[:2]; rr=b[2:]
    l.sort(key=lambda q:q[1]); rr.sort(key=lambda q:q[1])
    b=np.array([l[0],rr[0],rr[1],l[1]],np.float32)
    b[:,0]=np.clip(b[:,0]*W/rw,0,W); b[:,1]=np.clip(b[:,1]*H/rh,0,H)
    boxes.append(b)
boxes.sort(key=lambda b:b[0][1])
for b in boxes:
    w=int(max(np.linalg.norm(b[0]-b[1]),np.linalg.norm(b[2]-b[3]))); h=int(max(np.linalg.norm(b[0]-b[3]),np.linalg.norm(b[1]-b[2])))
    Mx=cv2.getPerspectiveTransform(b,np.float32([[0,0],[w,0],[w,h],[0,h]]))
    crop=cv2.warpPerspective(img,Mx,(w,h),borderMode=cv2.BORDER_REPLICATE,flags=cv2.INTER_CUBIC)
    iw=max(320,int(48*w/h)); nw=min(iw,int(np.ceil(48*w/h)))
    rz=cv2.resize(crop,(nw,48)).astype(np.float32)/255.; rz=(rz-0.5)/0.5
    inp=np.zeros((3,48,iw),np.float32); inp[:,:,:nw]=rz.transpose(2,0,1)
    o=rec.run(None,{rec.get_inputs()[0].name:inp[None]})[0][0]
    idx=o.argmax(1); s=''.join(chars[c] for t,c in enumerate(idx) if c!=0 and (t==0 or idx[t-1]!=c))
    print(repr(s))
