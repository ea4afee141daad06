import torch


def accuracy(output, target):
    with torch.no_grad():
        predicted = torch.argmax(output, dim=1)
        assert predicted.shape[0] == len(target)
        hits = torch.sum(predicted == target).item()
    return hits / len(target)


def top_k_acc(output, target, k=3):
    with torch.no_grad():
        best = torch.topk(output, k, dim=1)[1]
        assert best.shape[0] == len(target)
        hits = sum(torch.sum(best[:, i] == target).item() for i in range(k))
    return hits / len(target)
