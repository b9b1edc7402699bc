<?php
$MESS['SYNCD_SETTLEMENTS_REFUSE_OVERDUE'] = 'The order cannot be placed: you have overdue debt of #SUM#. Pay #SUM# of overdue debt or contact your manager.';
$MESS['SYNCD_SETTLEMENTS_REFUSE_LIMIT'] = 'The order exceeds your credit limit: debt #DEBT# plus this order of #PRICE# is over the limit of #LIMIT# (#LEFT# left). Pay your debt or contact your manager.';
