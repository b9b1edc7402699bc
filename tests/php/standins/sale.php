<?php
/**
 * Stand-ins of the sale module [R sale/lib/orderbase.php, sale/lib/result.php, sale/lib/eventactions.php]:
 * only what OnSaleOrderBeforeSaved involves.
 */

namespace Bitrix\Sale;

use Bitrix\Main;

/** [R sale/lib/result.php]: ResultError lives in result.php; "is a Main\Error" is what is sure. */
class ResultError extends Main\Error
{
    public static function create(Main\Error $error)
    {
        return new static($error->getMessage(), $error->getCode(), $error->getCustomData());
    }
}

class ResultWarning extends ResultError {}

class Result
{
    /** @var Main\Error[] */
    protected array $errors = [];

    public function addError(Main\Error $error) { $this->errors[] = $error; return $this; }
    public function getErrors() { return $this->errors; }
    public function isSuccess() { return $this->errors === []; }

    public function getErrorMessages()
    {
        return array_map(static fn(Main\Error $e) => $e->getMessage(), $this->errors);
    }
}

class EventActions
{
    public const EVENT_ON_ORDER_BEFORE_SAVED = 'OnSaleOrderBeforeSaved';
}

/**
 * [R sale/lib/orderbase.php]: getId() (int, 0 when new), getUserId() the raw USER_ID field,
 * getPrice() floatval(PRICE), getCurrency(), isNew(). save() sets isNew = (id == 0), then fires
 * Main\Event('sale', 'OnSaleOrderBeforeSaved', ['ENTITY' => $order, 'VALUES' => original values]);
 * each ERROR result adds its ResultError (or a generic error when the parameters are not one) and
 * save() returns the failed Result without writing and without an exception.
 */
abstract class OrderBase
{
    protected array $fields = [];
    protected bool $isNew = true;

    public function getField($name) { return $this->fields[$name] ?? null; }
    public function setField($name, $value) { $this->fields[$name] = $value; return new Result(); }
    public function getId() { return (int)($this->fields['ID'] ?? 0); }
    public function getUserId() { return $this->getField('USER_ID'); }
    public function getPrice() { return floatval($this->getField('PRICE')); }
    public function getCurrency() { return $this->getField('CURRENCY'); }
    public function getSiteId() { return $this->getField('LID'); }
    public function isNew() { return $this->isNew; }

    public function save()
    {
        $result = new Result();
        $this->isNew = $this->getId() == 0;
        $event = new Main\Event('sale', EventActions::EVENT_ON_ORDER_BEFORE_SAVED, ['ENTITY' => $this, 'VALUES' => []]);
        $event->send();
        foreach ($event->getResults() as $eventResult) {
            if ($eventResult->getType() == Main\EventResult::ERROR) {
                $error = $eventResult->getParameters();
                $result->addError($error instanceof ResultError ? $error
                    : new ResultError('SALE_EVENT_ON_BEFORE_ORDER_SAVED_ERROR', 'SALE_EVENT_ON_BEFORE_ORDER_SAVED_ERROR'));
            }
        }
        if ($result->isSuccess() && $this->isNew) {
            static $nextId = 1000;
            $this->fields['ID'] = ++$nextId; // the kernel inserts into b_sale_order here
        }
        return $result;
    }
}

class Order extends OrderBase
{
    /** [R sale/lib/orderbase.php] create($siteId, $userId = null, $currency = null). */
    public static function create($siteId, $userId = null, $currency = null)
    {
        $order = new static();
        $order->fields = ['LID' => $siteId, 'USER_ID' => $userId, 'CURRENCY' => $currency, 'PRICE' => 0];
        return $order;
    }

    /** Not in the kernel (which would Order::load($id) from b_sale_order): an order already saved. */
    public static function existing(int $id, $userId, float $price, string $currency = 'RUB')
    {
        $order = static::create('s1', $userId, $currency);
        $order->fields['ID'] = $id;
        $order->fields['PRICE'] = $price;
        $order->isNew = false;
        return $order;
    }
}
